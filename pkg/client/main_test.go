package client_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the tests and fails the package if anything left a
// goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
