package discovery_test

import (
	"context"
	"fmt"
	"time"

	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/discovery"
)

// The examples are compiled, not run: they need a cluster. They dial the
// session of `make run` on loopback as its development client, "dev"; in
// real code the addresses and credentials are your cluster's (sessions on
// 9603, meta on 9615). What each prints is in a comment at its end;
// internal/sdktest checks the same behaviour against an in-process
// cluster, and examples/ holds whole programs to run.

// session and credentials are the examples' cluster (make run's).
const session = "127.0.0.1:9603"

var credentials = client.WithCredentials(client.CredentialsDir("run/certs", "dev"))

func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// A server registers itself...
	server, err := client.New(ctx, client.WithSessions(session), credentials, client.WithZone("az1"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer server.Close()
	reg, err := discovery.New(server).Register(ctx, "com.example.Echo",
		discovery.Instance{Addr: "10.0.0.1:8080", Weight: 10, Metadata: map[string]string{"version": "1.4.2"}})
	if err != nil {
		fmt.Println(err)
		return
	}

	// ...and a caller watches the service.
	caller, err := client.New(ctx, client.WithSessions(session), credentials)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer caller.Close()
	w, err := discovery.New(caller).Watch(ctx, "com.example.Echo")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()
	show := func(set discovery.Set) {
		fmt.Println(len(set.Instances), "instance(s):")
		for _, inst := range set.Instances {
			fmt.Printf("  %s weight %d zone %s %v\n", inst.Addr, inst.Weight, inst.Zone, inst.Metadata)
		}
	}
	set, _ := w.Next(ctx)
	for len(set.Instances) == 0 && ctx.Err() == nil { // Register returns once the session has it; the data tier may get it after the watch's first list
		set, _ = w.Next(ctx)
	}
	show(set)

	// Drain the instance, then take it away.
	_ = reg.Update(ctx, discovery.Instance{Addr: "10.0.0.1:8080", Weight: 1})
	set, _ = w.Next(ctx)
	show(set)
	_ = reg.Deregister(ctx)
	set, _ = w.Next(ctx)
	show(set)
	// Prints, on a cluster where nothing else uses the data ID:
	// 1 instance(s):
	//   10.0.0.1:8080 weight 10 zone az1 map[version:1.4.2]
	// 1 instance(s):
	//   10.0.0.1:8080 weight 1 zone az1 map[]
	// 0 instance(s):
}

func ExampleWatcher_Updates() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.WithSessions(session), credentials)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	d := discovery.New(c)
	w, err := d.Watch(ctx, "com.example.Orders", client.WithGroup("RPC"))
	if err != nil {
		fmt.Println(err)
		return
	}
	go func() {
		for _, addr := range []string{"10.0.0.8:9000", "10.0.0.7:9000"} {
			_, _ = d.Register(ctx, "com.example.Orders", discovery.Instance{Addr: addr}, client.WithGroup("RPC"))
		}
	}()
	for set := range w.Updates() {
		if len(set.Instances) == 2 {
			fmt.Println("up:", set.Instances[0].Addr, set.Instances[1].Addr)
			_ = w.Close() // ends the loop
		}
	}
	// Prints, on a cluster where nothing else uses the data ID:
	// up: 10.0.0.7:9000 10.0.0.8:9000
}
