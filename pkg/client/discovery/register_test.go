package discovery_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/discovery"
)

// newClient returns a client of a session that is not there (nothing
// listens on port 1), closed when the test ends: for checks that must
// fail before anything is sent.
func newClient(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.New(context.Background(), client.WithSessions("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestRegister_RejectsBadInstancesBeforeSending(t *testing.T) {
	// Nothing listens: a request that were sent would wait for ctx.
	d := discovery.New(newClient(t))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, inst := range []discovery.Instance{{}, {Addr: "10.0.0.1"}, {Addr: "h:1", Weight: -1}} {
		if _, err := d.Register(ctx, "svc", inst); !errors.Is(err, client.ErrInvalidArgument) {
			t.Errorf("Register(%+v): %v, want ErrInvalidArgument", inst, err)
		}
	}
	big := discovery.Instance{Addr: "h:1", Metadata: map[string]string{"blob": strings.Repeat("x", 2<<20)}}
	if _, err := d.Register(ctx, "svc", big); !errors.Is(err, client.ErrTooLarge) {
		t.Errorf("Register with 2 MiB of metadata: %v, want ErrTooLarge", err)
	}
	if _, err := d.Register(ctx, "", discovery.Instance{Addr: "h:1"}); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("Register with no service name: %v, want ErrInvalidArgument", err)
	}
}
