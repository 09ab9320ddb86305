package balancer_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain runs the tests and fails the package if a goroutine of gRPC or
// of this module outlives them (a connection or server left open).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := leftBehind(5 * time.Second); leaked != "" {
			fmt.Fprintln(os.Stderr, "goroutines left behind:\n"+leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leftBehind polls, until wait has passed, for the goroutines other than
// this one that run gRPC's or Strata's code to end, and returns the
// stacks of those that did not.
func leftBehind(wait time.Duration) string {
	deadline := time.Now().Add(wait)
	buf := make([]byte, 1<<20)
	for {
		stacks := strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n")
		var leaked []string
		for _, g := range stacks[1:] { // the first is this goroutine
			if strings.Contains(g, "google.golang.org/grpc") || strings.Contains(g, "github.com/strata-registry/strata") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}
