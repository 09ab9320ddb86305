package resolver_test

import (
	"context"
	"log"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/resolver"
)

// A gRPC client that calls the instances of com.example.Echo registered in
// group RPC, spreading calls over them with round_robin. (Not run: it
// needs a cluster; TestResolver_GRPCClientFollowsTheServerAcrossAMove runs
// the same against an in-process one.)
func Example() {
	ctx := context.Background()
	c, err := client.New(ctx, client.WithMeta("meta-1:9615", "meta-2:9615", "meta-3:9615"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close() // after cc.Close: deferred calls run last-in first-out

	cc, err := grpc.NewClient("strata://RPC/com.example.Echo",
		grpc.WithResolvers(resolver.NewBuilder(c)),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()

	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		log.Fatal(err)
	}
	log.Println(resp.GetStatus())
}

// Only the instances in the caller's zone.
func ExampleWithWatchOptions() {
	c, err := client.New(context.Background(), client.WithMeta("meta-1:9615"), client.WithZone("az1"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	b := resolver.NewBuilder(c, resolver.WithWatchOptions(client.WithScope(client.ScopeZone)))
	cc, err := grpc.NewClient("strata:///com.example.Echo", grpc.WithResolvers(b),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
}
