package testcluster

import (
	"testing"

	"go.uber.org/goleak"
)

// LeakOptions are what a package's leak check (goleak, in its TestMain)
// lets outlive the tests: memberlist's probe of a peer, which it starts
// on a tick and does not cancel on Shutdown; it ends by itself when its
// ack wait times out (the probe interval), which under load can come
// after goleak's last retry. Every other goroutine of a shut-down
// memberlist (listeners, schedulers) still counts as a leak.
func LeakOptions() []goleak.Option {
	return []goleak.Option{goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode")}
}

// VerifyNoLeaks runs the package's tests, then fails it if any goroutine
// is left behind but those LeakOptions allow.
func VerifyNoLeaks(m *testing.M) { goleak.VerifyTestMain(m, LeakOptions()...) }
