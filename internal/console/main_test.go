package console_test

import (
	"testing"

	"github.com/strata-registry/strata/internal/testcluster"
)

// TestMain fails the package if a test leaves a goroutine behind (the
// collector's scrapes and connections, the cluster, the browser's).
func TestMain(m *testing.M) {
	testcluster.VerifyNoLeaks(m)
}
