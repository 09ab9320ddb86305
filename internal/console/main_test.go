package console_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (the
// collector's scrapes and connections, the cluster, the browser's).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
