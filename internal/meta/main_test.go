package meta_test

import (
	"testing"

	"github.com/strata-registry/strata/internal/testcluster"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// server must stop everything it started.
func TestMain(m *testing.M) {
	testcluster.VerifyNoLeaks(m)
}
