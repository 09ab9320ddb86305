package session_test

import (
	"testing"

	"github.com/strata-registry/strata/internal/testcluster"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	testcluster.VerifyNoLeaks(m)
}
