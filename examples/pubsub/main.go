// Command pubsub publishes a value under a data ID, watches it arrive
// through a subscription, updates it, takes it away, and exits:
//
//	cd examples && go run ./pubsub -credentials ../run/certs     # against make run
//	go run ./pubsub -session 127.0.0.1:9603 -meta '' -credentials /etc/strata -name orders
package main

import (
	"context"
	"flag"
	"fmt"
	"slices"

	"github.com/strata-registry/strata/examples/internal/connect"
	"github.com/strata-registry/strata/pkg/client"
)

func main() {
	fs := flag.NewFlagSet("pubsub", flag.ExitOnError)
	dataID := fs.String("data-id", "com.example.pubsub", "data ID to publish and subscribe to")
	connect.Main(fs, func(ctx context.Context, c *client.Client) error { return run(ctx, c, *dataID) })
}

func run(ctx context.Context, c *client.Client, dataID string) error {
	s, err := c.Subscribe(ctx, dataID)
	if err != nil {
		return err
	}
	defer s.Close()
	snap, err := s.Next(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("subscribed to %s: version %d, %d value(s)\n", dataID, snap.Version, len(snap.Values))

	p, err := c.Publish(ctx, dataID, []byte("hello"))
	if err != nil {
		return err
	}
	fmt.Printf("published %q as %s\n", "hello", p.RegisterID())
	if err := await(ctx, s, p.RegisterID(), "hello"); err != nil {
		return err
	}
	if err := p.Update(ctx, []byte("hello again")); err != nil {
		return err
	}
	fmt.Printf("updated to %q\n", "hello again")
	if err := await(ctx, s, p.RegisterID(), "hello again"); err != nil {
		return err
	}
	if err := p.Unpublish(ctx); err != nil {
		return err
	}
	fmt.Println("unpublished")
	if err := await(ctx, s, p.RegisterID(), ""); err != nil {
		return err
	}
	fmt.Println("done")
	return nil
}

// await reads snapshots until the publisher id holds want ("": none), and
// prints the one that shows it.
func await(ctx context.Context, s *client.Subscription, id, want string) error {
	for {
		snap, err := s.Next(ctx)
		if err != nil {
			return fmt.Errorf("waiting for %q: %w", want, err)
		}
		var got []string
		for _, v := range snap.Values {
			if v.PublisherID == id {
				got = append(got, string(v.Data))
			}
		}
		if (want == "" && len(got) == 0) || slices.Equal(got, []string{want}) {
			fmt.Printf("  pushed: version %d, %d value(s), ours %q\n", snap.Version, len(snap.Values), got)
			return nil
		}
	}
}
