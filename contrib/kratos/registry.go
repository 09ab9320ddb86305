package strata

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/go-kratos/kratos/v2/registry"

	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/discovery"
)

// Registry is a Kratos registry.Registrar and registry.Discovery over a
// Strata discovery.Discovery (see the package doc for the mapping). Its
// registrations live in the Strata client: they are kept across
// reconnects, and removed by Deregister, by the client's Close, or by the
// session when the process dies. Safe for concurrent use.
type Registry struct {
	d       *discovery.Discovery
	keyOpts []client.RegisterOption
	logger  *slog.Logger

	// mu serialises Register and Deregister (held while they wait for the
	// cluster, bounded by their contexts) and guards regs.
	mu sync.Mutex
	// regs holds what Register stored, by service name and Kratos ID.
	regs map[regKey][]*registered
}

var (
	_ registry.Registrar = (*Registry)(nil)
	_ registry.Discovery = (*Registry)(nil)
)

type regKey struct{ name, id string }

// registered is one endpoint of a ServiceInstance, registered.
type registered struct {
	url string
	reg *discovery.Registration
}

// Option configures a Registry (see New).
type Option func(*Registry)

// WithRecordOptions sets the rest of the record key for every Register,
// Watch and GetService: client.WithGroup and client.WithInstanceID (a
// watcher sees the registrations made with the same ones), and
// client.WithScope to narrow watches to the client's zone or datacenter.
func WithRecordOptions(opts ...client.RegisterOption) Option {
	return func(r *Registry) { r.keyOpts = append(r.keyOpts, opts...) }
}

// WithLogger sets where watchers report records they leave out because
// they carry a Kratos ID without an endpoint (default: nowhere).
func WithLogger(l *slog.Logger) Option { return func(r *Registry) { r.logger = l } }

// New returns a Registry over d. It starts nothing; d's client stays the
// caller's to close (which ends every registration and watcher of the
// Registry).
func New(d *discovery.Discovery, opts ...Option) *Registry {
	r := &Registry{d: d, regs: map[regKey][]*registered{}}
	for _, opt := range opts {
		opt(r)
	}
	if r.logger == nil {
		r.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return r
}

// Register registers each endpoint of si as a Strata instance of si.Name
// and returns once a session has stored them all. Registering an ID that
// this Registry has registered under that name already updates it: new
// endpoints are registered first, changed ones updated, and endpoints
// si no longer lists deregistered last.
//
// Errors: client.ErrInvalidArgument for an instance without a name, an ID
// or endpoints, an endpoint that is not scheme://host:port, or metadata
// keys starting with MetadataPrefix (nothing is registered then);
// client.ErrTooLarge for metadata over the record limit; otherwise what
// discovery.Register returns (ctx's error if no session stored it in
// time). After an error the endpoints stored so far stay registered, and
// calling Register again completes the update.
func (r *Registry) Register(ctx context.Context, si *registry.ServiceInstance) error {
	want, err := instances(si)
	if err != nil {
		return err
	}
	key := regKey{si.Name, si.ID}
	r.mu.Lock()
	defer r.mu.Unlock()
	have, err := r.store(ctx, si, want, r.regs[key])
	r.keep(key, have)
	return err
}

// store makes the registered endpoints have into want and returns those
// registered afterwards (all of want unless it failed); the caller holds
// r.mu.
func (r *Registry) store(ctx context.Context, si *registry.ServiceInstance, want []endpoint, have []*registered) ([]*registered, error) {
	for _, e := range want {
		if slices.ContainsFunc(have, func(h *registered) bool { return h.url == e.url }) {
			continue
		}
		reg, err := r.d.Register(ctx, si.Name, e.inst, r.keyOpts...)
		if err != nil {
			return have, fmt.Errorf("strata kratos: register %s endpoint %s: %w", si, e.url, err)
		}
		have = append(have, &registered{url: e.url, reg: reg})
	}
	for _, h := range have {
		i := slices.IndexFunc(want, func(e endpoint) bool { return e.url == h.url })
		if i < 0 || sameInstance(h.reg.Instance(), want[i].inst) {
			continue
		}
		if err := h.reg.Update(ctx, want[i].inst); err != nil {
			return have, fmt.Errorf("strata kratos: update %s endpoint %s: %w", si, h.url, err)
		}
	}
	return r.deregister(ctx, si, have, func(h *registered) bool {
		return !slices.ContainsFunc(want, func(e endpoint) bool { return e.url == h.url })
	})
}

// keep records what is registered under key; the caller holds r.mu.
func (r *Registry) keep(key regKey, have []*registered) {
	if len(have) == 0 {
		delete(r.regs, key)
		return
	}
	r.regs[key] = have
}

// Deregister removes every endpoint this Registry registered for si's
// name and ID, whatever si.Endpoints says, and returns once a session has
// removed them. An ID it has not registered (or has deregistered already)
// is no error, so a second Deregister (Kratos' App.Stop twice) is
// harmless. Errors: client.ErrInvalidArgument for an instance without a
// name or an ID; otherwise those of discovery.Registration.Deregister
// (ctx's error when no session answered in time), after which the
// endpoints not yet removed stay registered and Deregister may be called
// again.
func (r *Registry) Deregister(ctx context.Context, si *registry.ServiceInstance) error {
	switch {
	case si == nil:
		return invalidf("no service instance")
	case si.Name == "" || si.ID == "":
		return invalidf("service instance %s needs a name and an ID", si)
	}
	key := regKey{si.Name, si.ID}
	r.mu.Lock()
	defer r.mu.Unlock()
	have, err := r.deregister(ctx, si, r.regs[key], func(*registered) bool { return true })
	r.keep(key, have)
	return err
}

// deregister deregisters the endpoints in have that drop selects and
// returns those still registered; the caller holds r.mu.
func (r *Registry) deregister(ctx context.Context, si *registry.ServiceInstance, have []*registered, drop func(*registered) bool) ([]*registered, error) {
	var errs []error
	kept := have[:0:0]
	for _, h := range have {
		if !drop(h) {
			kept = append(kept, h)
			continue
		}
		// ErrClosed: removed already (the client was closed).
		if err := h.reg.Deregister(ctx); err != nil && !errors.Is(err, client.ErrClosed) {
			errs = append(errs, fmt.Errorf("strata kratos: deregister %s endpoint %s: %w", si, h.url, err))
			kept = append(kept, h)
		}
	}
	return kept, errors.Join(errs...)
}

// sameInstance reports whether a registration holds inst already.
func sameInstance(a, b discovery.Instance) bool {
	return a.Addr == b.Addr && a.Weight == b.Weight && a.Zone == b.Zone && a.State == b.State && maps.Equal(a.Metadata, b.Metadata)
}

// GetService returns the service's instances as a watcher's first Next
// would, but at once, empty list included: it subscribes, takes the
// current list (waiting for a session to send it, bounded by ctx) and
// unsubscribes. Errors: those of discovery.Watch, or ctx's.
func (r *Registry) GetService(ctx context.Context, name string) ([]*registry.ServiceInstance, error) {
	dw, err := r.d.Watch(ctx, name, r.keyOpts...)
	if err != nil {
		return nil, fmt.Errorf("strata kratos: get service %s: %w", name, err)
	}
	defer dw.Close()
	set, err := dw.Next(ctx)
	if err != nil {
		return nil, fmt.Errorf("strata kratos: get service %s: %w", name, err)
	}
	list, bad := serviceInstances(name, set)
	r.logBad(name, bad)
	return list, nil
}

// Watch starts following the service's instances; see Watcher's methods
// for the contract. The watcher lives until Stop or until ctx ends (as
// Kratos' gRPC resolver expects: it cancels ctx when it closes), so give
// it a context for the watch's whole life, not one that only bounds this
// call. Errors: those of discovery.Watch (which, while the client is not
// connected, returns at once; the first list then comes with the first
// session's answer).
func (r *Registry) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	dw, err := r.d.Watch(ctx, name, r.keyOpts...)
	if err != nil {
		return nil, fmt.Errorf("strata kratos: watch %s: %w", name, err)
	}
	return newWatcher(ctx, r, name, dw), nil
}

// logBad reports records that carry a Kratos ID but no endpoint.
func (r *Registry) logBad(name string, bad int) {
	if bad > 0 {
		r.logger.Warn("strata kratos: leaving out records with a Kratos ID but no endpoint URL",
			"service", name, "count", bad, "key", MetadataEndpoint)
	}
}
