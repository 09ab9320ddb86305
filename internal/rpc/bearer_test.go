package rpc_test

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/pki"
	"github.com/strata-registry/strata/internal/rpc"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
	"github.com/strata-registry/strata/pkg/client/wire"
)

// serveHealth serves the health service on loopback with opts and returns
// its address and the authorization values each call arrived with.
func serveHealth(t *testing.T, opts ...grpc.ServerOption) (addr string, got <-chan []string) {
	t.Helper()
	ch := make(chan []string, 1)
	opts = append(opts, grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		select {
		case ch <- md.Get(wire.AuthHeader):
		default:
		}
		return h(ctx, req)
	}))
	gs := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- rpc.Serve(gs, ln) }()
	t.Cleanup(func() {
		rpc.Stop(gs, 5*time.Second)
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String(), ch
}

func check(t *testing.T, addr string, dial []grpc.DialOption, call ...grpc.CallOption) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, dial...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, call...)
	return err
}

func TestBearer_SendsTheTokenOverTLS(t *testing.T) {
	dir := tlsconf.Dir(t.TempDir())
	if _, err := pki.Init(dir, pki.Plan{Cluster: "c", Meta: []string{"m1"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	srv, err := tlsconf.LoadNode(dir.TLS(identity.RoleMeta, "m1"),
		identity.ID{Cluster: "c", Role: identity.RoleMeta, Name: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	anon, err := tlsconf.Load(tlsconf.Config{CAFile: dir.CA()}, "c")
	if err != nil {
		t.Fatal(err)
	}
	addr, got := serveHealth(t, rpc.ServerOptions(srv, tls.VerifyClientCertIfGiven, 1<<20)...)
	if err := check(t, addr, rpc.DialOptions(anon, identity.Peer{Role: identity.RoleMeta}), grpc.PerRPCCredentials(wire.Bearer("s3cret"))); err != nil {
		t.Fatalf("a call with a bearer token over TLS: %v", err)
	}
	if v := <-got; len(v) != 1 || v[0] != "Bearer s3cret" {
		t.Errorf("the server saw authorization %q, want [\"Bearer s3cret\"]", v)
	}
}

func TestBearer_RefusesAPlaintextConnection(t *testing.T) {
	if !wire.Bearer("x").RequireTransportSecurity() {
		t.Fatal("Bearer does not require transport security")
	}
	addr, got := serveHealth(t)
	err := check(t, addr, []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, grpc.PerRPCCredentials(wire.Bearer("s3cret")))
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("a bearer call over plaintext = %v, want Unauthenticated (grpc-go refusing to send it)", err)
	}
	select {
	case v := <-got:
		t.Errorf("the call reached the server, with authorization %q", v)
	default:
	}
}
