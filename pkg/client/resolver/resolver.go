// Package resolver makes Strata a name resolver for grpc-go: a gRPC client
// dials "strata:///com.example.Echo" and its connections follow the
// instances registered under that service (package discovery), with their
// weights and zones attached for the load balancer.
//
// # Usage
//
//	c, err := client.New(ctx, client.WithMeta("meta-1:9615"))
//	if err != nil { ... }
//	defer c.Close()
//
//	cc, err := grpc.NewClient("strata:///com.example.Echo",
//		grpc.WithResolvers(resolver.NewBuilder(c)),
//		grpc.WithTransportCredentials(insecure.NewCredentials()))
//
// The package shares its name with grpc-go's resolver package; a file that
// needs both imports one under another name (strataresolver, say).
//
// Nothing is registered globally: the Builder serves the connections it is
// given to with grpc.WithResolvers, so one process can use several Strata
// clusters (one Builder each) and tests stay independent. A Builder may be
// shared by any number of connections; each connection's resolver holds one
// discovery.Watcher on the shared Client, and closing the connection ends
// it. Close the gRPC connections before the Client: once the Client is
// closed their resolvers stop following (they keep the last addresses and
// report client.ErrClosed).
//
// # Targets
//
//	strata:///SERVICE        the service in the group of WithWatchOptions (default DEFAULT_GROUP)
//	strata://GROUP/SERVICE   the service in GROUP
//
// SERVICE is the target's path without the leading slash, as registered
// with discovery.Register (it may contain further slashes; percent-escapes
// are decoded). The authority, when present, is the record group
// (client.WithGroup), so it must be a valid URL host (letters, digits and
// "-._~" are safe); it does not name a server, since the Client already
// knows the cluster.
//
// # What the resolver reports
//
// Every change of the instance list becomes one resolver.State holding one
// Endpoint per distinct address, in the order of discovery.Set (by
// address). Each carries the instance's weight, zone and state, read with
// EndpointWeight, EndpointZone and EndpointState; the State's Addresses
// list carries the same values as BalancerAttributes (WeightOf, ZoneOf,
// StateOf), for balancers that still read addresses. They are balancer
// attributes, not address attributes, so a weight or state change does
// not make gRPC reconnect. Two registrations of one address are reported
// once, as discovery.Set.PerAddress keeps them (the one taking most
// traffic, else the first).
//
// Disabled instances (discovery.StateDisabled) are left out, so gRPC
// closes their connections. Draining ones (and states this version does
// not know) are listed with their state: package balancer keeps their
// connections and sends them no new RPC. Other policies (round_robin,
// pick_first) do not read the state and treat a draining instance as any
// other.
//
// When the service has no instances (or only disabled ones) the resolver
// reports an empty State, so gRPC closes its connections and fails RPCs
// with codes.Unavailable (RPCs made with grpc.WaitForReady(true) wait for
// an instance instead), followed by an error naming the service for the
// RPC error message. A lost connection to Strata is not an empty list: the
// last addresses stay in use until the Client reconnects, and with
// client.WithCacheDir a process that starts while no session answers uses
// the cached list. When the watch itself fails (the Client cannot
// subscribe, or is closed), the resolver reports the error and,
// unless the Client is closed or the service name is invalid, tries again
// with backoff; ResolveNow makes it try at once.
//
// The default load-balancing policy (pick_first) uses one instance; to
// spread calls by weight and honour draining, use package balancer
// (balancer.DialOption()); round_robin
// (grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
// spreads them evenly.
package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	grpcresolver "google.golang.org/grpc/resolver"

	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/discovery"
)

// Scheme is the URI scheme a Builder resolves: "strata".
const Scheme = "strata"

// Builder builds resolvers for strata:// targets over one Client. Pass it
// to grpc.NewClient with grpc.WithResolvers. Safe for concurrent use.
type Builder struct {
	d         *discovery.Discovery
	logger    *slog.Logger
	watchOpts []client.RegisterOption
}

// The wait between failed watches doubles from retryMin up to retryMax.
const (
	retryMin = 100 * time.Millisecond
	retryMax = 10 * time.Second
)

// Option configures a Builder (see NewBuilder).
type Option func(*Builder)

// WithWatchOptions adds options to every watch the Builder's resolvers
// make, such as client.WithScope(client.ScopeZone) to call only instances
// in the client's zone, or the client.WithGroup and client.WithInstanceID
// of the registrations. A target's group (strata://GROUP/SERVICE) comes
// after them and so overrides a client.WithGroup given here.
func WithWatchOptions(opts ...client.RegisterOption) Option {
	return func(b *Builder) { b.watchOpts = append(b.watchOpts, opts...) }
}

// WithLogger sets where resolvers log records under a service that are not
// instances (see discovery.WithLogger; default: nowhere).
func WithLogger(l *slog.Logger) Option {
	return func(b *Builder) { b.logger = l }
}

// NewBuilder returns a Builder over c. It starts nothing and registers
// nothing globally; c stays the caller's to close (after the gRPC
// connections that use the Builder).
func NewBuilder(c *client.Client, opts ...Option) *Builder {
	b := &Builder{}
	for _, opt := range opts {
		opt(b)
	}
	var dopts []discovery.Option
	if b.logger != nil {
		dopts = append(dopts, discovery.WithLogger(b.logger))
	}
	b.d = discovery.New(c, dopts...)
	return b
}

// Scheme returns Scheme; it implements resolver.Builder.
func (b *Builder) Scheme() string { return Scheme }

// Build starts following target's service for cc and returns at once; the
// first addresses reach cc when the watch has them. It fails only for a
// target with no service name. It implements resolver.Builder and is
// called by gRPC, not by users.
func (b *Builder) Build(target grpcresolver.Target, cc grpcresolver.ClientConn, _ grpcresolver.BuildOptions) (grpcresolver.Resolver, error) {
	service := target.Endpoint()
	if service == "" {
		return nil, fmt.Errorf("strata resolver: target %q names no service (want strata:///SERVICE or strata://GROUP/SERVICE)", target.String())
	}
	opts := slices.Clone(b.watchOpts)
	if g := target.URL.Host; g != "" {
		opts = append(opts, client.WithGroup(g))
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &strataResolver{b: b, service: service, opts: opts, cc: cc, cancel: cancel, now: make(chan struct{}, 1)}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.run(ctx)
	}()
	return r, nil
}

// strataResolver follows one service for one gRPC connection.
type strataResolver struct {
	b       *Builder
	service string
	opts    []client.RegisterOption
	cc      grpcresolver.ClientConn
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	now     chan struct{} // capacity 1: ResolveNow was called
}

// ResolveNow makes a failed watch retry at once; otherwise it does
// nothing, since changes are pushed.
func (r *strataResolver) ResolveNow(grpcresolver.ResolveNowOptions) {
	select {
	case r.now <- struct{}{}:
	default:
	}
}

// Close stops following and returns once the resolver will call cc no
// more.
func (r *strataResolver) Close() {
	r.cancel()
	r.wg.Wait()
}

// run watches the service until ctx ends, re-watching with backoff when a
// watch cannot start or ends while the client is still open.
func (r *strataResolver) run(ctx context.Context) {
	var last []instanceKey // the last state reported (nil: none yet)
	for failures := 0; ; {
		w, err := r.b.d.Watch(ctx, r.service, r.opts...)
		if err == nil {
			failures = 0
			err = r.follow(ctx, w, &last)
			_ = w.Close()
		}
		if ctx.Err() != nil {
			return
		}
		r.cc.ReportError(fmt.Errorf("strata resolver: watching service %q: %w", r.service, err))
		if errors.Is(err, client.ErrClosed) || errors.Is(err, client.ErrInvalidArgument) || errors.Is(err, client.ErrTooLarge) {
			// The Client is closed, or the service name is one no session
			// accepts: trying again cannot help.
			return
		}
		failures++
		t := time.NewTimer(r.delay(failures))
		select {
		case <-t.C:
		case <-r.now:
		case <-ctx.Done():
		}
		t.Stop()
		if ctx.Err() != nil {
			return
		}
	}
}

// follow reports each Set of w to cc until w fails (or ctx ends).
func (r *strataResolver) follow(ctx context.Context, w *discovery.Watcher, last *[]instanceKey) error {
	for {
		set, err := w.Next(ctx)
		if err != nil {
			return err
		}
		state, keys := r.state(set)
		if *last != nil && slices.Equal(keys, *last) {
			continue // only metadata changed: nothing gRPC sees
		}
		*last = keys
		// A watch cannot resolve again on demand, so UpdateState's error
		// (the balancer refusing the state, as pick_first refuses an empty
		// one) calls for nothing here: the next change is pushed.
		_ = r.cc.UpdateState(state)
		switch {
		case len(keys) == 0 && len(set.Instances) > 0:
			r.cc.ReportError(fmt.Errorf("strata resolver: no instances of service %q are enabled (%d registered, all disabled)",
				r.service, len(set.Instances)))
		case len(keys) == 0:
			r.cc.ReportError(fmt.Errorf("strata resolver: no instances of service %q are registered", r.service))
		}
	}
}

// instanceKey is what the resolver reports of one instance.
type instanceKey struct {
	addr   string
	weight int
	zone   string
	state  discovery.State
}

// state turns a Set into the State to report: one endpoint per address
// (discovery.Set.PerAddress), disabled instances left out.
func (r *strataResolver) state(set discovery.Set) (grpcresolver.State, []instanceKey) {
	insts := set.PerAddress()
	keys := make([]instanceKey, 0, len(insts))
	st := grpcresolver.State{
		Addresses: make([]grpcresolver.Address, 0, len(insts)),
		Endpoints: make([]grpcresolver.Endpoint, 0, len(insts)),
	}
	for _, inst := range insts {
		if inst.State == discovery.StateDisabled {
			continue
		}
		keys = append(keys, instanceKey{inst.Addr, inst.Weight, inst.Zone, inst.State})
		st.Addresses = append(st.Addresses, NewAddress(inst))
		st.Endpoints = append(st.Endpoints, NewEndpoint(inst))
	}
	return st, keys
}

// delay is the wait before the nth retry: doubling from retryMin up to
// retryMax, with the upper half drawn at random.
func (r *strataResolver) delay(n int) time.Duration {
	d := retryMax
	if n < 30 {
		d = min(retryMax, retryMin<<(n-1))
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
