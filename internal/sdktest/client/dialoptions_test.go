package client_test

import (
	"context"
	"maps"
	"sync"
	"testing"

	"google.golang.org/grpc"

	"github.com/strata-registry/strata/internal/sdktest"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// methods counts the gRPC methods interceptors saw.
type methods struct {
	mu   sync.Mutex
	seen map[string]int
}

func (m *methods) add(method string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seen[method]++
}

func (m *methods) all() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.seen)
}

// TestClient_WithDialOptions_InterceptorsSeeTheClientsCalls: a unary and
// a stream interceptor given with WithDialOptions (in two calls, which add
// up) see the client's own calls, meta's ListSessions and the session
// stream, and the client works through them over TLS: the options come
// after the client's, they do not replace its credentials.
func TestClient_WithDialOptions_InterceptorsSeeTheClientsCalls(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1})
	c.WaitDataSettled(t)
	seen := &methods{seen: map[string]int{}}
	unary := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		seen.add(method)
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	stream := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		seen.add(method)
		return streamer(ctx, desc, cc, method, opts...)
	}
	cl := sdktest.New(t, c, client.WithMeta(c.MetaAddrs()...),
		client.WithDialOptions(grpc.WithChainUnaryInterceptor(unary)),
		client.WithDialOptions(grpc.WithChainStreamInterceptor(stream)))

	ctx := sdktest.Ctx(t)
	s, err := cl.Subscribe(ctx, "com.example.Intercepted")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Publish(ctx, "com.example.Intercepted", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	nextUntil(t, s, nil, holds("v1"))
	got := seen.all()
	for _, m := range []string{registryv1.MetaService_ListSessions_FullMethodName, registryv1.SessionService_Connect_FullMethodName} {
		if got[m] == 0 {
			t.Errorf("the interceptors never saw %s (saw %v)", m, got)
		}
	}
}
