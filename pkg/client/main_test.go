package client_test

import (
	"testing"

	"github.com/strata-registry/strata/internal/clienttest"
)

// TestMain runs the tests and examples, stops the examples' cluster, and
// fails the package if anything left a goroutine behind.
func TestMain(m *testing.M) { clienttest.Main(m) }
