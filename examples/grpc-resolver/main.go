// Command grpc-resolver is a gRPC client that finds its server through
// Strata: it starts a small gRPC server (the health service) on loopback,
// registers it as an instance of a service, dials strata:///<service>
// with the SDK's resolver, calls the server, deregisters it, and exits:
//
//	cd examples && go run ./grpc-resolver -credentials ../run/certs  # against make run
//	go run ./grpc-resolver -service com.example.Health
//
// The resolver is given to this one connection (grpc.WithResolvers); the
// SDK registers nothing globally.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/strata-registry/strata/examples/internal/connect"
	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/discovery"
	"github.com/strata-registry/strata/pkg/client/resolver"
)

func main() {
	fs := flag.NewFlagSet("grpc-resolver", flag.ExitOnError)
	service := fs.String("service", "com.example.Health", "service name the server registers under and the client dials")
	connect.Main(fs, func(ctx context.Context, c *client.Client) error { return run(ctx, c, *service) })
}

func run(ctx context.Context, c *client.Client, service string) error {
	// The server: gRPC's health service on a free loopback port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Stop()
		<-served
	}()
	fmt.Printf("gRPC server listening on %s\n", ln.Addr())

	reg, err := discovery.New(c).Register(ctx, service, discovery.Instance{Addr: ln.Addr().String()})
	if err != nil {
		return err
	}
	fmt.Printf("registered %s as an instance of %s\n", ln.Addr(), service)

	// The client: Strata resolves the target to the registered instances.
	target := "strata:///" + service
	cc, err := grpc.NewClient(target,
		grpc.WithResolvers(resolver.NewBuilder(c)),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		grpc.WithTransportCredentials(insecure.NewCredentials())) // the example server is plaintext
	if err != nil {
		return err
	}
	defer cc.Close()
	// WaitForReady: wait for the resolver to report the instance rather
	// than fail while the list is still empty.
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("call %s: %w", target, err)
	}
	fmt.Printf("called %s: %s\n", target, resp.GetStatus())

	if err := reg.Deregister(ctx); err != nil {
		return err
	}
	fmt.Printf("deregistered %s\n", ln.Addr())
	fmt.Println("done")
	return nil
}
