package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// command must close its gRPC and HTTP connections.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
