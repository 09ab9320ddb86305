package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Publication is one live record published under a data ID. It lives until
// Unpublish or the client's Close; the client keeps it registered across
// reconnects. Safe for concurrent use.
type Publication struct {
	c          *Client
	registerID string
	dataID     string
	instanceID string
	group      string
	ack        registryv1.AckLevel

	// mu orders this publication's frames: the replay of a new stream and
	// an Update or Unpublish never interleave, so a stale version can never
	// follow a newer one, nor a registration its removal.
	mu      sync.Mutex
	version uint64
	// raised is how far the version the cluster gets (version+raised) is
	// above version: one more each time a stream ended while one of this
	// publication's frames waited for its ack (see unsure).
	raised uint64
	values [][]byte
	gone   bool
	// unsure is set when a stream ends before the session acked one of
	// this publication's frames. Such a session may still apply the frame
	// later, with a register timestamp later than the next session's (a
	// frozen process that wakes up, a stalled link that heals), and its
	// copy would win and then be removed with that session's connection.
	// The next registration goes out one version higher, which no late
	// copy can beat.
	unsure atomic.Bool
}

// Publish registers value under dataID and returns once a session has
// stored it (WithAck(AckApplied): once its slot leader has). The publication stays registered, across reconnects and
// session failures, until Unpublish or Close. Several values may be given
// with Update; Publish takes the first.
//
// Errors: ErrInvalidArgument or ErrTooLarge for bad input (checked before
// anything is sent), ErrRateLimited, ErrUnauthenticated, ErrClosed, or
// ctx's error if no session stored it in time (the publication is then
// withdrawn).
func (c *Client) Publish(ctx context.Context, dataID string, value []byte, opts ...RegisterOption) (*Publication, error) {
	var o regOptions
	for _, opt := range opts {
		opt(&o)
	}
	p := &Publication{c: c, registerID: newID(), dataID: dataID, instanceID: o.instanceID, group: o.group,
		version: 1, values: [][]byte{clone(value)}}
	switch o.ack {
	case AckHeld:
	case AckApplied:
		p.ack = registryv1.AckLevel_ACK_LEVEL_APPLIED
	default:
		return nil, &localError{ErrInvalidArgument, fmt.Errorf("unknown ack %d (AckHeld or AckApplied)", o.ack)}
	}
	if err := p.check(p.values); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.pubs[p.registerID] = p
	c.mu.Unlock()
	if err := p.request(ctx, p.register); err != nil {
		c.mu.Lock()
		delete(c.pubs, p.registerID)
		c.mu.Unlock()
		st := c.connected()
		p.mu.Lock()
		p.gone = true
		if st != nil {
			// It may have been stored before ctx ended: take it back.
			_ = st.send(p.unregister())
		}
		p.mu.Unlock()
		return nil, err
	}
	return p, nil
}

// RegisterID returns the publication's ID (stable for its life).
func (p *Publication) RegisterID() string { return p.registerID }

// Version returns the publication's version: 1 when published, one more
// with every Update. The version the cluster stores may be higher: a
// registration whose session failed before acking it is re-sent one
// version up, so that session's copy, if it still lands, loses.
func (p *Publication) Version() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.version
}

// Update replaces the publication's values (one or more) and returns once a
// session has stored the new version. If the session refuses it (an
// *Error), the publication keeps its previous values. If ctx ends first,
// the outcome is unknown: the new values stay the publication's, and the
// client keeps them registered (a reconnect replays them).
func (p *Publication) Update(ctx context.Context, values ...[]byte) error {
	if len(values) == 0 {
		return &localError{ErrInvalidArgument, errors.New("update needs at least one value (use Unpublish to remove)")}
	}
	vals := make([][]byte, len(values))
	for i, v := range values {
		vals[i] = clone(v)
	}
	if err := p.check(vals); err != nil {
		return err
	}
	p.mu.Lock()
	if p.gone {
		p.mu.Unlock()
		return ErrClosed
	}
	prevValues := p.values
	p.version++
	p.values = vals
	mine, raised := p.version, p.raised
	p.mu.Unlock()
	err := p.request(ctx, p.register)
	var refused *Error
	if errors.As(err, &refused) {
		// The session did not store it: undo, unless a later Update
		// already replaced it. If a stream ended under this update, a
		// failed session may still apply one of its frames late: the
		// undone state goes out above every version the update used.
		p.mu.Lock()
		if p.version == mine {
			p.version--
			p.values = prevValues
			if p.raised != raised || p.unsure.Load() {
				p.raised++
			}
		}
		p.mu.Unlock()
	}
	return err
}

// Unpublish removes the publication and returns once a session has
// removed it. Subscribers are pushed the list without it. Unpublishing
// twice returns ErrClosed.
func (p *Publication) Unpublish(ctx context.Context) error {
	p.mu.Lock()
	if p.gone {
		p.mu.Unlock()
		return ErrClosed
	}
	p.gone = true
	p.mu.Unlock()
	p.c.mu.Lock()
	delete(p.c.pubs, p.registerID)
	p.c.mu.Unlock()
	return p.request(ctx, func() *registryv1.ClientFrame { return p.unregister() })
}

// check validates values and the key the way the session will, so bad
// input fails here with a precise error. (The register ID is the client's
// own, well-formed by construction.)
func (p *Publication) check(values [][]byte) error {
	if _, _, _, err := record.ParseDataInfoID(record.DataInfoID(p.dataID, p.instanceID, p.group)); err != nil {
		return recordError(err)
	}
	if err := record.ValidateValues(values); err != nil {
		return recordError(err)
	}
	return nil
}

// register builds the current registration. Caller holds p.mu.
func (p *Publication) register() *registryv1.ClientFrame {
	return &registryv1.ClientFrame{Body: &registryv1.ClientFrame_RegisterPublisher{RegisterPublisher: &registryv1.RegisterPublisher{
		RegisterId: p.registerID, DataId: p.dataID, InstanceId: p.instanceID, Group: p.group,
		Version: p.wireVersion(), Values: p.values, Ack: p.ack,
	}}}
}

// unregister builds the removal. Caller holds p.mu.
func (p *Publication) unregister() *registryv1.ClientFrame {
	return &registryv1.ClientFrame{Body: &registryv1.ClientFrame_UnregisterPublisher{UnregisterPublisher: &registryv1.UnregisterPublisher{
		RegisterId: p.registerID, DataId: p.dataID, InstanceId: p.instanceID, Group: p.group, Version: p.wireVersion(),
	}}}
}

// wireVersion is the version frames carry: version, raised once more if a
// frame's fate on an ended stream is unknown. Caller holds p.mu.
func (p *Publication) wireVersion() uint64 {
	if p.unsure.Swap(false) {
		p.raised++
	}
	return p.version + p.raised
}

// request sends the frame build makes (under p.mu, so it carries the state
// as of sending) and waits for the session's ack. A stream that ends first
// is no failure: the next one gets the replay, and the request is sent
// again there.
func (p *Publication) request(ctx context.Context, build func() *registryv1.ClientFrame) error {
	for {
		st, err := p.c.stream(ctx)
		if err != nil {
			return err
		}
		p.mu.Lock()
		ch, err := st.start(build(), &p.unsure)
		p.mu.Unlock()
		if err == nil {
			var a *registryv1.Ack
			if a, err = wait(ctx, ch); err == nil {
				return fromCode(codeOf(a), a.GetMessage())
			}
		}
		if errors.Is(err, errStreamEnded) {
			<-st.done // stream() then waits for its replacement
		}
		if !errors.Is(err, errStreamEnded) {
			return err
		}
	}
}

// replay implements replayer.
func (p *Publication) replay(st *stream) <-chan *registryv1.Ack {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone {
		return nil
	}
	ch, _ := st.start(p.register(), &p.unsure)
	return ch
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
