package client_test

import (
	"context"
	"fmt"
	"time"

	"github.com/strata-registry/strata/pkg/client"
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
	c, err := client.New(ctx, client.WithSessions(session), credentials)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	s, err := c.Subscribe(ctx, "com.example.Echo", client.WithGroup("RPC"))
	if err != nil {
		fmt.Println(err)
		return
	}
	snap, _ := s.Next(ctx) // the current list: nobody yet
	fmt.Println("instances:", len(snap.Values))

	p, err := c.Publish(ctx, "com.example.Echo", []byte("10.0.0.1:8080"), client.WithGroup("RPC"))
	if err != nil {
		fmt.Println(err)
		return
	}
	snap, _ = s.Next(ctx)
	fmt.Printf("instances: %s\n", snap.Values[0].Data)

	_ = p.Update(ctx, []byte("10.0.0.1:8081"))
	snap, _ = s.Next(ctx)
	fmt.Printf("instances: %s\n", snap.Values[0].Data)

	_ = p.Unpublish(ctx)
	snap, _ = s.Next(ctx)
	fmt.Println("instances:", len(snap.Values))
	// Prints, on a cluster where nothing else uses the data ID:
	// instances: 0
	// instances: 10.0.0.1:8080
	// instances: 10.0.0.1:8081
	// instances: 0
}

func ExampleSubscription_Updates() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.WithSessions(session), credentials, client.WithZone("az1"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	s, err := c.Subscribe(ctx, "com.example.Orders")
	if err != nil {
		fmt.Println(err)
		return
	}
	go func() {
		p, err := c.Publish(ctx, "com.example.Orders", []byte("10.0.0.7:9000"))
		if err == nil {
			_ = p.Update(ctx, []byte("10.0.0.7:9000"), []byte("10.0.0.8:9000"))
		}
	}()
	for snap := range s.Updates() {
		if len(snap.Values) == 2 {
			fmt.Println("both instances up, zone", snap.Values[0].Zone)
			_ = s.Close() // ends the loop
		}
	}
	// Prints, on a cluster where nothing else uses the data ID:
	// both instances up, zone az1
}
