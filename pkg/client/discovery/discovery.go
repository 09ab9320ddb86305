package discovery

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"sync"

	"github.com/strata-registry/strata/pkg/client"
)

// Discovery registers and watches service instances through one Client.
// It holds no state of its own beyond its options: every Registration and
// Watcher lives in the Client, which keeps them across reconnects and ends
// them on Close. Safe for concurrent use.
type Discovery struct {
	c      *client.Client
	logger *slog.Logger
}

// Option configures a Discovery (see New).
type Option func(*Discovery)

// WithLogger sets where watchers report records they skip because they
// are not instances (default: nowhere; Set.Skipped counts them anyway).
func WithLogger(l *slog.Logger) Option { return func(d *Discovery) { d.logger = l } }

// New returns a Discovery over c. It starts nothing; c stays the caller's
// to close.
func New(c *client.Client, opts ...Option) *Discovery {
	d := &Discovery{c: c}
	for _, opt := range opts {
		opt(d)
	}
	if d.logger == nil {
		d.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return d
}

// Registration is one registered instance of a service. It stays
// registered, across reconnects and session failures, until Deregister or
// the Client's Close; if the process dies, the session removes it after
// its disconnect grace period. Safe for concurrent use.
type Registration struct {
	service string
	pub     *client.Publication

	// updating serialises Update calls, so inst ends as the last stored.
	updating sync.Mutex

	mu   sync.Mutex
	inst Instance
}

// Register publishes inst as an instance of service and returns once a
// session has stored it. The record's data ID is service itself; opts
// (client.WithGroup, client.WithInstanceID) select the rest of the key,
// and watchers must use the same ones to see it.
//
// Errors: client.ErrInvalidArgument for an instance that is not valid (see
// Instance) or a bad service name, client.ErrTooLarge for metadata over the
// record limit, and otherwise what Client.Publish returns.
func (d *Discovery) Register(ctx context.Context, service string, inst Instance, opts ...client.RegisterOption) (*Registration, error) {
	inst, err := normalize(inst)
	if err != nil {
		return nil, err
	}
	b, err := encode(inst)
	if err != nil {
		return nil, err
	}
	p, err := d.c.Publish(ctx, service, b, opts...)
	if err != nil {
		return nil, err
	}
	return &Registration{service: service, pub: p, inst: inst}, nil
}

// Service returns the name the instance is registered under.
func (r *Registration) Service() string { return r.service }

// ID returns the registration's ID, stable for its life: the PublisherID
// that raw subscribers (client.Subscribe) see on its record.
func (r *Registration) ID() string { return r.pub.RegisterID() }

// Instance returns the instance as stored by Register or the last
// successful Update (Weight 0 turned into DefaultWeight; Zone as given,
// possibly empty).
func (r *Registration) Instance() Instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	inst := r.inst
	inst.Metadata = maps.Clone(inst.Metadata)
	return inst
}

// Update replaces the registered instance (its address too, if it moved,
// and its State) and returns once a session has stored the change;
// watchers see it as a new Set. Errors are those of Register, or
// client.ErrClosed after Deregister.
func (r *Registration) Update(ctx context.Context, inst Instance) error {
	r.updating.Lock()
	defer r.updating.Unlock()
	return r.storeLocked(ctx, inst)
}

// storeLocked publishes inst as the registration's new instance; the
// caller holds r.updating.
func (r *Registration) storeLocked(ctx context.Context, inst Instance) error {
	inst, err := normalize(inst)
	if err != nil {
		return err
	}
	b, err := encode(inst)
	if err != nil {
		return err
	}
	if err := r.pub.Update(ctx, b); err != nil {
		return err
	}
	r.mu.Lock()
	r.inst = inst
	r.mu.Unlock()
	return nil
}

// Deregister removes the instance and returns once a session has removed
// it; watchers see a Set without it. Deregistering twice returns
// client.ErrClosed.
func (r *Registration) Deregister(ctx context.Context) error {
	return r.pub.Unpublish(ctx)
}
