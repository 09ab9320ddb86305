package strata_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the tests and fails the package if anything left a
// goroutine behind (the SDK clients', the Kratos resolvers' watch loops,
// the cluster harness's log copiers and process waiters).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
