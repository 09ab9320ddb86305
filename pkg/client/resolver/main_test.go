package resolver_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the tests and fails the package if anything (a resolver's
// watch goroutine above all) left a goroutine behind.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}
