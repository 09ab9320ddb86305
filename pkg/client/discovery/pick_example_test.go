package discovery_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/strata-registry/strata/pkg/client/discovery"
)

// A Picker in zone az1. In real code its Sets come from a Watcher:
// go p.Follow(ctx, w).
func ExamplePicker() {
	ctx := context.Background()
	p, err := discovery.NewPicker(discovery.WithPreferredZone("az1"))
	if err != nil {
		fmt.Println(err)
		return
	}
	p.Update(discovery.Set{Instances: []discovery.Instance{
		{Addr: "10.0.0.1:8080", Weight: 10, Zone: "az1"},
		{Addr: "10.0.0.2:8080", Weight: 10, Zone: "az2"},
		{Addr: "10.0.0.3:8080", Weight: 10, Zone: "az1", State: discovery.StateDraining},
	}})
	inst, _ := p.Pick(ctx) // the only serving instance in az1
	fmt.Println("picked", inst.Addr)

	// It fails three times in a row: ejected, so az2 takes over.
	for range 3 {
		p.Report(inst, errors.New("connection refused"))
	}
	inst, _ = p.Pick(ctx)
	fmt.Println("picked", inst.Addr)

	p.Update(discovery.Set{})
	_, err = p.Pick(ctx)
	fmt.Println(errors.Is(err, discovery.ErrNoInstance))
	// Output:
	// picked 10.0.0.1:8080
	// picked 10.0.0.2:8080
	// true
}
