package resolver_test

import (
	"context"
	"net/url"
	"testing"

	grpcresolver "google.golang.org/grpc/resolver"

	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/resolver"
)

// nopCC is a resolver.ClientConn for builds that must fail before they
// report anything (its methods panic).
type nopCC struct{ grpcresolver.ClientConn }

func TestBuild_RejectsTargetsWithoutService(t *testing.T) {
	c, err := client.New(context.Background(), client.WithSessions("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := resolver.NewBuilder(c)
	for _, target := range []string{"strata:///", "strata://group/", "strata://group"} {
		u, err := url.Parse(target)
		if err != nil {
			t.Fatal(err)
		}
		if r, err := b.Build(grpcresolver.Target{URL: *u}, nopCC{}, grpcresolver.BuildOptions{}); err == nil {
			r.Close()
			t.Errorf("Build(%q) succeeded", target)
		}
	}
}
