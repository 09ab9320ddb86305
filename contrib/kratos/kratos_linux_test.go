//go:build linux

package strata_test

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/go-kratos/kratos/v2"
	"github.com/go-kratos/kratos/v2/registry"
	kgrpc "github.com/go-kratos/kratos/v2/transport/grpc"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/discovery"

	strata "github.com/strata-registry/strata/contrib/kratos"
)

// echoService is the test's gRPC service, written by hand rather than
// generated: Who answers with the ID of the server that took the call.
const echoService = "strata.kratostest.Echo"

type whoer interface{ Who() string }

type echo string

func (e echo) Who() string { return string(e) }

var echoDesc = grpc.ServiceDesc{
	ServiceName: echoService,
	HandlerType: (*whoer)(nil),
	Methods: []grpc.MethodDesc{{MethodName: "Who", Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
		in := new(wrapperspb.StringValue)
		if err := dec(in); err != nil {
			return nil, err
		}
		who := func(context.Context, any) (any, error) { return wrapperspb.String(srv.(whoer).Who()), nil }
		if icpt == nil {
			return who(ctx, in)
		}
		return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + echoService + "/Who"}, who)
	}}},
}

// who calls Who over conn, bounded by a second.
func who(ctx context.Context, conn *grpc.ClientConn) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	out := new(wrapperspb.StringValue)
	if err := conn.Invoke(ctx, "/"+echoService+"/Who", wrapperspb.String(""), out); err != nil {
		return "", err
	}
	return out.GetValue(), nil
}

// registryOf returns a Registry over a new SDK client of the cluster,
// found through meta, with the development client identity "dev" that
// `registryctl certs init` writes, as `make run` users connect.
func registryOf(t *testing.T, c *cluster) (*strata.Registry, *discovery.Discovery) {
	t.Helper()
	sdk, err := client.New(t.Context(), client.WithMeta(c.metaGRPC), client.WithCredentials(client.CredentialsDir(c.creds, "dev")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sdk.Close() })
	d := discovery.New(sdk)
	return strata.New(d), d
}

// app is a running Kratos application: a Kratos gRPC server on a new
// loopback port serving echoDesc, registered through a Registry by
// Kratos' own App lifecycle (Register after start, Deregister on Stop).
type app struct {
	id    string
	app   *kratos.App
	ran   chan error
	ended bool
}

func startApp(t *testing.T, r *strata.Registry, name, id string) *app {
	t.Helper()
	srv := kgrpc.NewServer(kgrpc.Address(anyPort))
	srv.RegisterService(&echoDesc, echo(id))
	registered := make(chan struct{})
	a := &app{id: id, ran: make(chan error, 1)}
	a.app = kratos.New(kratos.ID(id), kratos.Name(name), kratos.Version("v1.0.0"),
		kratos.Metadata(map[string]string{"app": id}), kratos.Server(srv), kratos.Registrar(r),
		kratos.RegistrarTimeout(15*time.Second),
		// Not the default SIGINT and SIGTERM: Kratos never lets go of the
		// signals it watches, so the test process would ignore them after.
		kratos.Signal(syscall.SIGUSR2),
		kratos.AfterStart(func(context.Context) error { close(registered); return nil }))
	go func() { a.ran <- a.app.Run() }()
	t.Cleanup(func() { a.stop(t) })
	select {
	case <-registered:
	case err := <-a.ran:
		a.ended = true
		t.Fatalf("app %s ended before it registered: %v", id, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("app %s did not register within 20s", id)
	}
	return a
}

// stop stops the app (Kratos deregisters it, then stops its server) and
// waits for Run to return.
func (a *app) stop(t *testing.T) {
	t.Helper()
	if a.ended {
		return
	}
	a.ended = true
	if err := a.app.Stop(); err != nil {
		t.Errorf("stop app %s: %v", a.id, err)
	}
	select {
	case err := <-a.ran:
		if err != nil {
			t.Errorf("app %s: Run: %v", a.id, err)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("app %s: Run did not return within 15s of Stop", a.id)
	}
}

// TestKratos_AgainstACluster runs the adapter against a real cluster
// (startCluster: the repository's binaries, secure as make run).
func TestKratos_AgainstACluster(t *testing.T) {
	c := startCluster(t)
	t.Run("ClientDialsDiscovery_AnsweredByTheRegisteredServer_FollowsItsMove", func(t *testing.T) { roundTrip(t, c) })
	t.Run("Watcher_RegisterTwiceUpdates_DeregisterRemovesEveryEndpoint_PlainAndDrained", func(t *testing.T) { mapping(t, c) })
}

// roundTrip is the round trip of issue 15: a Kratos gRPC server registers
// through Strata (kratos.Registrar), a Kratos client dials
// discovery:///NAME (grpc.WithDiscovery) and is answered; the server stops
// (deregisters) and another starts on a new port (registers), and the
// client's calls reach the new one. Registrar and client use separate SDK
// clients, as two processes would.
func roundTrip(t *testing.T, c *cluster) {
	const name = "com.example.kratos.Echo"
	serverSide, _ := registryOf(t, c)
	clientSide, _ := registryOf(t, c)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	first := startApp(t, serverSide, name, "echo-1")
	conn, err := kgrpc.DialInsecure(ctx, kgrpc.WithEndpoint("discovery:///"+name), kgrpc.WithDiscovery(clientSide),
		kgrpc.WithPrintDiscoveryDebugLog(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	answeredBy(t, ctx, conn, "echo-1")
	checkListed(t, ctx, clientSide, name, first)

	start := time.Now()
	first.stop(t)
	second := startApp(t, serverSide, name, "echo-2")
	answeredBy(t, ctx, conn, "echo-2")
	t.Logf("the client's calls reached the new server %v after the old one began to stop", time.Since(start).Round(time.Millisecond))
	checkListed(t, ctx, clientSide, name, second)
}

// answeredBy waits until a call over conn is answered by server want.
func answeredBy(t *testing.T, ctx context.Context, conn *grpc.ClientConn, want string) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		got, err := who(ctx, conn)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("answered by %s, want %s", got, want)
		}
		return nil
	})
}

// checkListed checks that GetService lists exactly a, as Kratos
// registered it: ID, version, metadata and its server's endpoint.
func checkListed(t *testing.T, ctx context.Context, r *strata.Registry, name string, a *app) {
	t.Helper()
	want := &registry.ServiceInstance{ID: a.id, Name: name, Version: "v1.0.0", Metadata: map[string]string{"app": a.id},
		Endpoints: slices.Clone(a.app.Endpoint())}
	eventually(t, 10*time.Second, func() error {
		got, err := r.GetService(ctx, name)
		if err != nil {
			return err
		}
		if len(got) != 1 || !got[0].Equal(want) {
			return fmt.Errorf("GetService: %s, want [%+v]", strata.Show(got), *want)
		}
		return nil
	})
}

// mapping checks the mapping against a real cluster, through a Watcher as Kratos'
// resolver uses it: a second Register of an ID updates it in place (one
// ServiceInstance, the new metadata and endpoints), Deregister removes
// all its endpoints (Next returns the empty list), an instance registered
// through the SDK alone is listed with grpc:// and grpcs:// endpoints,
// and draining it takes it out of the list.
func mapping(t *testing.T, c *cluster) {
	const name = "com.example.kratos.Mapping"
	r, d := registryOf(t, c)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	w, err := r.Watch(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	si := &registry.ServiceInstance{ID: "m-1", Name: name, Version: "v1", Metadata: map[string]string{"rev": "1"},
		Endpoints: []string{"grpc://127.0.0.1:7001", "http://127.0.0.1:7002"}}
	if err := r.Register(ctx, si); err != nil {
		t.Fatal(err)
	}
	nextIs(t, w, "registered", si)

	moved := &registry.ServiceInstance{ID: "m-1", Name: name, Version: "v2", Metadata: map[string]string{"rev": "2"},
		Endpoints: []string{"grpc://127.0.0.1:7001", "http://127.0.0.1:7003"}}
	if err := r.Register(ctx, moved); err != nil {
		t.Fatal(err)
	}
	nextIs(t, w, "registered again", moved)

	if err := r.Deregister(ctx, &registry.ServiceInstance{ID: "m-1", Name: name}); err != nil {
		t.Fatal(err)
	}
	nextIs(t, w, "deregistered")

	reg, err := d.Register(ctx, name, discovery.Instance{Addr: "127.0.0.1:7004", Weight: 3})
	if err != nil {
		t.Fatal(err)
	}
	nextIs(t, w, "registered through the SDK", &registry.ServiceInstance{ID: "127.0.0.1:7004", Name: name,
		Metadata: map[string]string{"weight": "3"}, Endpoints: []string{"grpc://127.0.0.1:7004", "grpcs://127.0.0.1:7004"}})
	if err := reg.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	nextIs(t, w, "drained")
	if err := reg.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
}

// nextIs checks that the watcher's next list, whatever the changes on the
// way (an update of several endpoints is not one change), ends up as
// want.
func nextIs(t *testing.T, w registry.Watcher, what string, want ...*registry.ServiceInstance) {
	t.Helper()
	for {
		got, err := w.Next()
		if err != nil {
			t.Fatalf("%s: Next: %v", what, err)
		}
		if slices.EqualFunc(got, want, func(a, b *registry.ServiceInstance) bool { return a.Equal(b) }) {
			return
		}
		t.Logf("%s: Next: %s (waiting for %s)", what, strata.Show(got), strata.Show(want))
	}
}
