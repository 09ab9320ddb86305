package resolver_test

import (
	"testing"

	"github.com/strata-registry/strata/internal/sdktest"
)

// TestMain runs the tests and fails the package if anything (a resolver's
// watch goroutine above all) left a goroutine behind.
func TestMain(m *testing.M) { sdktest.Main(m) }
