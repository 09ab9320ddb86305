package chaos

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/record"
)

// LoadConfig shapes the steady load.
type LoadConfig struct {
	// Publishers is how many publications (one client each), two per key.
	Publishers int
	// Subscribers is how many subscriber clients; each follows every key.
	Subscribers int
	// Rate is updates per second per publication.
	Rate float64
	// UpdateTimeout bounds one Update; past it the outcome is unknown and
	// the publisher goes on with its next value.
	UpdateTimeout time.Duration
}

// Load is the publishers and subscribers of a run, all through pkg/client.
type Load struct {
	cfg  LoadConfig
	pubs []*publisher
	subs []*subscriber
	keys []string
	ch   *Checker

	cancel context.CancelFunc
	wg     sync.WaitGroup
	// pubsDone is closed when every publisher loop has returned.
	pubCancel context.CancelFunc
	pubWG     sync.WaitGroup
}

type publisher struct {
	name, key string
	cl        *client.Client
	pub       *client.Publication
	seq       uint64
}

type subscriber struct {
	name string
	cl   *client.Client
	subs map[string]*client.Subscription // by key
}

// dataInfoID is the key subscribers and slots know dataID by.
func dataInfoID(dataID string) string { return record.DataInfoID(dataID, "", "") }

// dataID is the data ID of key number i.
func dataID(i int) string { return fmt.Sprintf("com.example.chaos.svc%02d", i) }

// StartLoad connects the clients, subscribes every subscriber to every
// key, publishes every publication's first value, builds the checker
// (bound: its convergence bound) and then starts the loops: publishers
// update at cfg.Rate, subscribers report every snapshot to the checker.
func StartLoad(ctx context.Context, c *Cluster, cfg LoadConfig, bound time.Duration) (*Load, error) {
	l := &Load{cfg: cfg}
	fail := func(err error) (*Load, error) {
		l.closeClients()
		return nil, err
	}
	newClient := func(name string) (*client.Client, error) {
		opts := append(c.ClientOptions(true), client.WithClientID(name),
			client.WithBackoff(50*time.Millisecond, time.Second), client.WithDialTimeout(2*time.Second))
		return client.New(ctx, opts...)
	}
	nkeys := max(1, (cfg.Publishers+1)/2)
	for i := range nkeys {
		l.keys = append(l.keys, dataID(i))
	}
	for i := range cfg.Subscribers {
		s := &subscriber{name: fmt.Sprintf("s%02d", i), subs: map[string]*client.Subscription{}}
		cl, err := newClient("chaos-" + s.name)
		if err != nil {
			return fail(err)
		}
		s.cl = cl
		l.subs = append(l.subs, s)
		for _, k := range l.keys {
			sub, err := cl.Subscribe(ctx, k)
			if err != nil {
				return fail(fmt.Errorf("chaos: subscribe %s to %s: %w", s.name, k, err))
			}
			s.subs[k] = sub
		}
	}
	firsts := map[string]bool{}
	var pubs []Publication
	for i := range cfg.Publishers {
		p := &publisher{name: fmt.Sprintf("p%02d", i), key: l.keys[i%nkeys], seq: 1}
		cl, err := newClient("chaos-" + p.name)
		if err != nil {
			return fail(err)
		}
		p.cl = cl
		l.pubs = append(l.pubs, p)
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		p.pub, err = cl.Publish(pctx, p.key, Value(p.name, 1))
		cancel()
		if err != nil {
			return fail(fmt.Errorf("chaos: publish %s: %w", p.name, err))
		}
		firsts[p.pub.RegisterID()] = true
		pubs = append(pubs, Publication{RegisterID: p.pub.RegisterID(), Name: p.name, Key: p.key})
	}
	var subNames []string
	for _, s := range l.subs {
		subNames = append(subNames, s.name)
	}
	l.ch = NewChecker(CheckConfig{Publications: pubs, Subscribers: subNames, Keys: l.keys, ConvergenceBound: bound})
	// The first values' latency counts from here, when the subscribers
	// start reading: before, nobody looked (Publish and Subscribe ran one
	// after another).
	now := time.Now()
	for id := range firsts {
		l.ch.Sent(id, 1, now)
		l.ch.Acked(id, 1, now, nil)
	}
	lctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	for _, s := range l.subs {
		for k, sub := range s.subs {
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				for {
					snap, err := sub.Next(lctx)
					if err != nil {
						return
					}
					l.ch.Observed(s.name, k, time.Now(), snap)
				}
			}()
		}
	}
	pctx, pcancel := context.WithCancel(lctx)
	l.pubCancel = pcancel
	interval := time.Duration(float64(time.Second) / max(cfg.Rate, 0.01))
	for i, p := range l.pubs {
		l.pubWG.Add(1)
		go func() {
			defer l.pubWG.Done()
			// Spread the publishers over the interval.
			select {
			case <-pctx.Done():
				return
			case <-time.After(interval * time.Duration(i) / time.Duration(len(l.pubs))):
			}
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-pctx.Done():
					return
				case <-t.C:
				}
				l.update(pctx, p, cfg.UpdateTimeout)
			}
		}()
	}
	return l, nil
}

// update sends p's next value and records it.
func (l *Load) update(ctx context.Context, p *publisher, timeout time.Duration) error {
	p.seq++
	id := p.pub.RegisterID()
	l.ch.Sent(id, p.seq, time.Now())
	uctx, cancel := context.WithTimeout(ctx, timeout)
	err := p.pub.Update(uctx, Value(p.name, p.seq))
	cancel()
	if err != nil && errors.Is(err, context.Canceled) && ctx.Err() != nil {
		// Stopped mid-call: unknown outcome, not a failure.
		err = fmt.Errorf("chaos: stopped: %w", err)
	}
	l.ch.Acked(id, p.seq, time.Now(), err)
	return err
}

// Checker returns the run's checker.
func (l *Load) Checker() *Checker { return l.ch }

// Keys returns the subscribed data IDs.
func (l *Load) Keys() []string { return l.keys }

// Sessions returns the session each publication's client and each
// subscriber's is on now ("" while it is not connected).
func (l *Load) Sessions() (pubs, subs map[string]string) {
	pubs, subs = map[string]string{}, map[string]string{}
	for _, p := range l.pubs {
		pubs[p.pub.RegisterID()] = p.cl.Session()
	}
	for _, s := range l.subs {
		subs[s.name] = s.cl.Session()
	}
	return pubs, subs
}

// StopPublishing stops the update loops, then gives every publication
// one more value and waits (up to timeout each, in parallel) for its
// ack, so each one's last value is acked.
func (l *Load) StopPublishing(timeout time.Duration) error {
	l.pubCancel()
	l.pubWG.Wait()
	var wg sync.WaitGroup
	errs := make([]error, len(l.pubs))
	for i, p := range l.pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.update(context.Background(), p, timeout); err != nil {
				errs[i] = fmt.Errorf("%s: last update: %w", p.name, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close stops every loop and closes the clients.
func (l *Load) Close() {
	if l.pubCancel != nil {
		l.pubCancel()
	}
	l.pubWG.Wait()
	if l.cancel != nil {
		l.cancel()
	}
	l.wg.Wait()
	l.closeClients()
}

func (l *Load) closeClients() {
	for _, p := range l.pubs {
		_ = p.cl.Close()
	}
	for _, s := range l.subs {
		_ = s.cl.Close()
	}
	l.pubs, l.subs = nil, nil
}
