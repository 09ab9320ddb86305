package balancer_test

import (
	"context"
	"log"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/balancer"
	"github.com/strata-registry/strata/pkg/client/resolver"
)

// A gRPC client spreading its calls over the instances of com.example.Echo
// by weight, sparing draining ones. (Not run: it needs a cluster.)
func Example() {
	balancer.Register() // early in main, before any gRPC connection is made

	c, err := client.New(context.Background(), client.WithMeta("meta-1:9615"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close() // after cc.Close: deferred calls run last-in first-out

	cc, err := grpc.NewClient("strata:///com.example.Echo",
		grpc.WithResolvers(resolver.NewBuilder(c)),
		balancer.DialOption(),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
}
