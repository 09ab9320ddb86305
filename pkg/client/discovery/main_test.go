package discovery_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the tests and examples, stops the examples' cluster, and
// fails the package if anything left a goroutine behind.
func TestMain(m *testing.M) {
	code := m.Run()
	stopExampleCluster()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}
