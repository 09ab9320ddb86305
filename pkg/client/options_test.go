package client_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/strata-registry/strata/pkg/client"
)

// TestNew_LivenessOptions_AreValidated: heartbeat, missed-heartbeat and
// keepalive settings out of range fail New with an error naming the
// option; good ones pass.
func TestNew_LivenessOptions_AreValidated(t *testing.T) {
	ctx := context.Background()
	sessions := client.WithSessions("127.0.0.1:1")
	for _, tc := range []struct {
		name string
		opt  client.Option
		want string // "" for a valid option
	}{
		{"negative heartbeat", client.WithHeartbeat(-time.Second), "WithHeartbeat(-1s)"},
		{"heartbeat below the floor", client.WithHeartbeat(time.Millisecond), "at least 10ms"},
		{"one missed heartbeat", client.WithMissedHeartbeats(1), "WithMissedHeartbeats(1): at least 2"},
		{"no missed heartbeats", client.WithMissedHeartbeats(0), "WithMissedHeartbeats(0)"},
		{"keepalive below gRPC's floor", client.WithKeepalive(5*time.Second, time.Second), "at least 10s (sessions close connections that ping more often"},
		{"keepalive without a timeout", client.WithKeepalive(time.Minute, 0), "timeout positive"},
		{"session's heartbeat", client.WithHeartbeat(0), ""},
		{"shortest heartbeat", client.WithHeartbeat(client.MinHeartbeat), ""},
		{"two missed heartbeats", client.WithMissedHeartbeats(2), ""},
		{"shortest keepalive", client.WithKeepalive(client.MinKeepaliveTime, time.Second), ""},
	} {
		cl, err := client.New(ctx, sessions, tc.opt)
		if err == nil {
			_ = cl.Close()
		}
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: New: %v", tc.name, err)
		case tc.want != "" && err == nil:
			t.Errorf("%s: New succeeded", tc.name)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: New: %v; want an error saying %q", tc.name, err, tc.want)
		}
	}
}
