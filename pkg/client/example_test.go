package client_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client"
)

// The examples run against an in-process cluster (3 meta, 3 data, 1
// session on loopback), started on first use; in real code the addresses
// are your cluster's (sessions on 9603, meta on 9615).

var example struct {
	once    sync.Once
	tb      *exampleTB
	cluster *testcluster.Cluster
}

func sessionAddr() string {
	example.once.Do(func() {
		example.tb = &exampleTB{}
		example.cluster = testcluster.Start(example.tb, testcluster.Spec{Meta: 3, Data: 3, Session: 1})
		example.cluster.WaitDataSettled(example.tb)
	})
	return example.cluster.Session(0).Server().GRPCAddr()
}

func stopExampleCluster() {
	if example.tb != nil {
		example.tb.cleanup()
	}
}

func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.WithSessions(sessionAddr()))
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
	// Output:
	// instances: 0
	// instances: 10.0.0.1:8080
	// instances: 10.0.0.1:8081
	// instances: 0
}

func ExampleSubscription_Updates() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.WithSessions(sessionAddr()), client.WithZone("az1"))
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
	// Output:
	// both instances up, zone az1
}

// exampleTB lets the examples use the test harness, which wants a
// testing.TB: failures panic, cleanups run when the package's tests end.
type exampleTB struct {
	testing.TB // unused methods panic (nil)
	mu         sync.Mutex
	cleanups   []func()
	dirs       []string
}

func (*exampleTB) Helper()                         {}
func (*exampleTB) Name() string                    { return "examples" }
func (*exampleTB) Failed() bool                    { return false }
func (*exampleTB) Log(args ...any)                 {}
func (*exampleTB) Logf(format string, args ...any) {}
func (*exampleTB) Fatal(args ...any)               { panic(fmt.Sprint(args...)) }
func (*exampleTB) Fatalf(f string, args ...any)    { panic(fmt.Sprintf(f, args...)) }
func (*exampleTB) Errorf(f string, args ...any)    { panic(fmt.Sprintf(f, args...)) }
func (e *exampleTB) Cleanup(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cleanups = append(e.cleanups, f)
}
func (e *exampleTB) TempDir() string {
	d, err := os.MkdirTemp("", "strata-example-")
	if err != nil {
		panic(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dirs = append(e.dirs, d)
	return d
}
func (e *exampleTB) cleanup() {
	e.mu.Lock()
	fs, dirs := e.cleanups, e.dirs
	e.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}
