// Command discovery registers an instance of a service, watches the
// service until the instance shows, picks an instance of it as a caller
// would (discovery.Picker), changes its weight, deregisters it, and exits:
//
//	cd examples && go run ./discovery -credentials ../run/certs  # against make run
//	go run ./discovery -service com.example.Echo -addr 10.0.0.1:8080 -weight 10
package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/strata-registry/strata/examples/internal/connect"
	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/discovery"
)

func main() {
	fs := flag.NewFlagSet("discovery", flag.ExitOnError)
	service := fs.String("service", "com.example.Echo", "service name (the data ID)")
	addr := fs.String("addr", "127.0.0.1:8080", "instance address to register (host:port)")
	weight := fs.Int("weight", 10, "instance weight")
	connect.Main(fs, func(ctx context.Context, c *client.Client) error {
		inst := discovery.Instance{Addr: *addr, Weight: *weight, Metadata: map[string]string{"example": "discovery"}}
		return run(ctx, c, *service, inst)
	})
}

func run(ctx context.Context, c *client.Client, service string, inst discovery.Instance) error {
	d := discovery.New(c)

	reg, err := d.Register(ctx, service, inst)
	if err != nil {
		return err
	}
	fmt.Printf("registered %s as an instance of %s (weight %d)\n", inst.Addr, service, inst.Weight)
	w, err := d.Watch(ctx, service)
	if err != nil {
		return err
	}
	defer w.Close()
	set, err := await(ctx, w, inst.Addr, inst.Weight)
	if err != nil {
		return err
	}

	// A caller picks one instance per request: by weight, its own zone
	// first, draining and failing instances spared. A long-lived caller
	// keeps the Picker current with go p.Follow(ctx, w).
	p, err := discovery.NewPicker()
	if err != nil {
		return err
	}
	p.Update(set)
	picked, err := p.Pick(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("picked %s (weight %d)\n", picked.Addr, picked.Weight)

	inst.Weight = 1 // drain it: callers that balance by weight send it less
	if err := reg.Update(ctx, inst); err != nil {
		return err
	}
	fmt.Printf("weight of %s set to %d\n", inst.Addr, inst.Weight)
	if _, err := await(ctx, w, inst.Addr, inst.Weight); err != nil {
		return err
	}
	if err := reg.Deregister(ctx); err != nil {
		return err
	}
	fmt.Printf("deregistered %s\n", inst.Addr)
	if _, err := await(ctx, w, inst.Addr, 0); err != nil {
		return err
	}
	fmt.Println("done")
	return nil
}

// await reads the service's sets until the instance at addr is there with
// weight (0: until it is gone), and prints and returns that set.
func await(ctx context.Context, w *discovery.Watcher, addr string, weight int) (discovery.Set, error) {
	for {
		set, err := w.Next(ctx)
		if err != nil {
			return set, fmt.Errorf("watching %s: %w", w.Service(), err)
		}
		found := 0
		for _, in := range set.Instances {
			if in.Addr == addr {
				found = in.Weight
			}
		}
		if found != weight {
			continue
		}
		fmt.Printf("  %s: %d instance(s) at version %d\n", w.Service(), len(set.Instances), set.Version)
		for _, in := range set.Instances {
			fmt.Printf("    %s weight %d zone %q %v\n", in.Addr, in.Weight, in.Zone, in.Metadata)
		}
		return set, nil
	}
}
