package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/strata-registry/strata/internal/chaos"
	"github.com/strata-registry/strata/pkg/client"
)

// The data IDs the Strata phases use; the storm's are bench.svc0000 on.
const (
	strataProbeKey   = "bench.probe"
	strataRestartKey = "bench.restart"
	strataFanoutKey  = "bench.fanout"
)

// Series of the data nodes' and sessions' metrics the phases wait on.
const (
	metricDataPublishers = "strata_data_publishers"
	metricDataLeaders    = `strata_data_publishers{role="leader"}`
	metricSessionPubs    = "strata_session_publishers"
	metricSessionBacklog = "strata_session_forward_backlog"
	metricSessionConns   = "strata_session_connections"
)

// Sizes and bounds of the phases.
const (
	// millionRSSLimit is the RSS past which the million stops.
	millionRSSLimit = 8 << 30
	// connectTimeout bounds a client's connect (and a first snapshot);
	// requestTimeout one registration or update.
	connectTimeout = 30 * time.Second
	requestTimeout = 30 * time.Second
	// spreadConns is how many connections the restart storm's
	// publishers and the fan-out's subscribers are spread over.
	spreadConns = 100
)

// strataCluster is one fresh cluster of real processes and the
// benchmark's handle on it.
type strataCluster struct {
	c    *chaos.Cluster
	name string // "strata 3/3/2"
	// dir holds the cluster's nodes and the heap profiles the
	// footprints keep (heap/).
	dir string
	b   *bench
}

// startStrata starts a cluster of shape with its logs, data and
// credentials under dir, and waits until its slots are settled.
func (b *bench) startStrata(ctx context.Context, shape Shape, dir string) (*strataCluster, error) {
	name := "strata " + shape.String()
	b.logf("%s: starting a cluster (logs in %s)", name, dir)
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	c, err := chaos.StartCluster(sctx, chaos.ClusterConfig{Bin: b.bin, Dir: dir,
		Meta: shape.Meta, Data: shape.Data, Session: shape.Session,
		Logf: func(format string, args ...any) { b.logf(name+": "+format, args...) }})
	if err != nil {
		return nil, fmt.Errorf("start a %s cluster: %w", shape, err)
	}
	return &strataCluster{c: c, name: name, dir: dir, b: b}, nil
}

// heapProfiles is where a footprint of phase keeps its nodes' heap
// profiles (settledMemory).
func (s *strataCluster) heapProfiles(phase string) string {
	return filepath.Join(s.dir, "heap", phase)
}

// profile starts a CPU profile of every node over --cpu-profile (none
// when it is 0), kept in <dir>/profiles/cpu-<phase>-<node id>.pb.gz, and
// returns a function that waits until they are all written (a failed one
// is logged and skipped: a profile is for diagnosis, not a figure).
func (s *strataCluster) profile(ctx context.Context, phase string) (wait func()) {
	d := s.b.opts.CPUProfile
	if d <= 0 {
		return func() {}
	}
	dir := filepath.Join(s.dir, "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.b.logf("%s: no CPU profiles: %v", s.name, err)
		return func() {}
	}
	s.b.logf("%s %s: CPU profiles of every node over %v into %s", s.name, phase, d, dir)
	var wg sync.WaitGroup
	for _, n := range s.c.Nodes() {
		wg.Go(func() {
			path := filepath.Join(dir, "cpu-"+phase+"-"+n.ID+".pb.gz")
			f, err := os.Create(path)
			if err == nil {
				err = s.c.CPUProfile(ctx, n, d, f)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				s.b.logf("%s %s: CPU profile of %s: %v", s.name, phase, n.ID, err)
			}
		})
	}
	return wg.Wait
}

// close stops every node.
func (s *strataCluster) close() {
	s.c.Close()
	s.b.logf("%s: cluster stopped", s.name)
}

// connect opens a client of session number i (modulo the sessions) and
// waits until it is connected.
func (s *strataCluster) connect(ctx context.Context, i int) (*client.Client, error) {
	n := s.c.Sessions[i%len(s.c.Sessions)]
	cl, err := client.New(ctx, s.c.ClientOptionsAt(n)...)
	if err != nil {
		return nil, fmt.Errorf("client of %s: %w", n.ID, err)
	}
	wctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := cl.WaitConnected(wctx); err != nil {
		_ = cl.Close()
		return nil, fmt.Errorf("connect to %s: %w", n.ID, err)
	}
	return cl, nil
}

// connectMany opens n clients, client k on session first+k (round
// robin), a few dozen connecting at a time.
func (s *strataCluster) connectMany(ctx context.Context, n, first int) ([]*client.Client, error) {
	out := make([]*client.Client, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for k := range n {
		g.Go(func() error {
			cl, err := s.connect(gctx, first+k)
			out[k] = cl
			return err
		})
	}
	if err := g.Wait(); err != nil {
		closeAll(out)
		return nil, err
	}
	return out, nil
}

// closeAll closes every client (nil ones skipped) in parallel; each
// Close waits up to 2 s for its unpublishes to be confirmed.
func closeAll(cs []*client.Client) {
	var wg sync.WaitGroup
	for _, c := range cs {
		if c != nil {
			wg.Go(func() { _ = c.Close() })
		}
	}
	wg.Wait()
}

// publish publishes value under dataID on cl and returns once acked,
// retrying with backoff while the session refuses it under a rate limit;
// it also returns how many refusals it retried.
func publish(ctx context.Context, cl *client.Client, dataID string, value []byte) (*client.Publication, int, error) {
	retries := 0
	backoff := 10 * time.Millisecond
	for {
		pctx, cancel := context.WithTimeout(ctx, requestTimeout)
		p, err := cl.Publish(pctx, dataID, value)
		cancel()
		if !errors.Is(err, client.ErrRateLimited) {
			return p, retries, err
		}
		retries++
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, retries, ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}

// memNodes returns the cluster's nodes of the roles as memory-read nodes.
func (s *strataCluster) memNodes(roles ...string) []memNode {
	var out []memNode
	for _, n := range s.c.Nodes() {
		for _, r := range roles {
			if n.Role == r {
				out = append(out, memNode{id: n.ID, role: n.Role, scrape: func() (map[string]float64, error) { return s.c.Scrape(n) },
					gc: func(w io.Writer) error { return s.c.CollectGarbage(n, w) }})
			}
		}
	}
	return out
}

// sum scrapes every node of role and adds up metric.
func (s *strataCluster) sum(role, metric string) (float64, error) {
	var total float64
	for _, n := range s.c.Nodes() {
		if n.Role != role {
			continue
		}
		m, err := s.c.Scrape(n)
		if err != nil {
			return 0, err
		}
		total += m[metric]
	}
	return total, nil
}

// strataMain runs the phases that share one fresh cluster of shape: idle
// connections, the storm (with its probe and footprint), the restart
// storm and the fan-out, in that order (idle first, on a cluster that
// has held nothing yet).
func (b *bench) strataMain(ctx context.Context, shape Shape, pair int) *SystemResult {
	res := &SystemResult{System: "strata " + shape.String(), Shape: shape.String()}
	o := b.opts
	if !o.enabled(phaseIdle) && !o.enabled(phaseStorm) && !o.enabled(phaseRestart) && !o.enabled(phaseFanout) {
		return res
	}
	sc, err := b.startStrata(ctx, shape, b.path(fmt.Sprintf("strata-%s-pair%d", shape.dirName(), pair+1)))
	if err != nil {
		res.fail("start", err)
		return res
	}
	defer sc.close()
	t := o.PhaseTimeout
	b.phase(ctx, res, phaseIdle, t, func(ctx context.Context) (err error) {
		res.Idle, err = sc.idle(ctx, o.IdleConns)
		return err
	})
	b.phase(ctx, res, phaseStorm, t, func(ctx context.Context) error { return sc.stormAndFootprint(ctx, res) })
	b.phase(ctx, res, phaseRestart, t, func(ctx context.Context) (err error) {
		res.Restart, err = sc.restart(ctx, o.RestartPublishers)
		return err
	})
	b.phase(ctx, res, phaseFanout, t, func(ctx context.Context) (err error) {
		res.Fanout, err = sc.fanout(ctx, o.Fanout, o.FanoutRounds)
		return err
	})
	return res
}

// idle opens conns idle clients (nothing published or subscribed) over
// the sessions and reads the sessions' heap plus stacks per connection.
func (s *strataCluster) idle(ctx context.Context, conns int) (*IdleResult, error) {
	nodes := s.memNodes(chaos.RoleSession)
	before, err := settledMemory(ctx, nodes, "")
	if err != nil {
		return nil, err
	}
	clients, err := s.connectMany(ctx, conns, 0)
	if err != nil {
		return nil, err
	}
	defer closeAll(clients)
	err = poll(ctx, time.Minute, func() error {
		n, err := s.sum(chaos.RoleSession, metricSessionConns)
		if err == nil && int(n) < conns {
			err = fmt.Errorf("sessions count %d of %d connections", int(n), conns)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	after, err := settledMemory(ctx, nodes, s.heapProfiles(phaseIdle))
	if err != nil {
		return nil, err
	}
	return newIdleResult(conns, memoryTable(nodes, before, after), chaos.RoleSession), nil
}

// stormAndFootprint runs the full-speed storm with its probe, then reads
// the footprint once every publisher is stored on every copy, then
// closes the storm's clients and waits until the cluster has dropped
// their publishers (so the next phase starts clean).
func (s *strataCluster) stormAndFootprint(ctx context.Context, res *SystemResult) error {
	o := s.b.opts
	r, err := s.newRig(ctx)
	if err != nil {
		return err
	}
	defer r.close(ctx)
	nodes := s.memNodes(chaos.RoleData, chaos.RoleSession)
	before, err := settledMemory(ctx, nodes, "")
	if err != nil {
		return err
	}
	out, lat, err := r.storm(ctx, phaseStorm, "storm", nil)
	if err != nil {
		return err
	}
	res.Storm = newStormResult(o, out, lat, 0)
	if err := s.waitAllStored(ctx, o.Publishers, 2*time.Minute); err != nil {
		return err
	}
	copies, err := s.copies()
	if err != nil {
		return err
	}
	after, err := settledMemory(ctx, nodes, s.heapProfiles(phaseStorm))
	if err != nil {
		return err
	}
	res.Footprint = newFootprint(o.Publishers, copies, "the slot table (leader + followers per slot)", memoryTable(nodes, before, after))
	closeAll(r.clients)
	return s.waitDrained(ctx)
}

// stormRig is what a storm phase runs with: --clients clients and the
// probe timing pushes beside them.
type stormRig struct {
	s       *strataCluster
	clients []*client.Client
	probe   *probeRun
}

// newRig connects the clients and starts the probe.
func (s *strataCluster) newRig(ctx context.Context) (*stormRig, error) {
	clients, err := s.connectMany(ctx, s.b.opts.Clients, 0)
	if err != nil {
		return nil, err
	}
	pr, err := s.startProbe(ctx)
	if err != nil {
		closeAll(clients)
		return nil, err
	}
	return &stormRig{s: s, clients: clients, probe: pr}, nil
}

// storm runs the storm of the --publishers, paced by lim (nil: full
// speed), with every node's CPU profiled as phase (--cpu-profile), and
// returns its outcome and the probe's push latency during it. The probe
// stops with it; the clients (and what they registered) stay.
func (r *stormRig) storm(ctx context.Context, phase, what string, lim *rate.Limiter) (stormOutcome, *Latency, error) {
	profiled := r.s.profile(ctx, phase)
	out, err := runStorm(ctx, r.s.stormSpec(what, r.clients, lim, r.probe.p))
	r.probe.stop(ctx)
	profiled()
	if err != nil {
		return stormOutcome{}, nil, err
	}
	return out, r.probe.p.latency(), nil
}

// close stops the probe and closes the clients.
func (r *stormRig) close(ctx context.Context) {
	r.probe.stop(ctx)
	closeAll(r.clients)
}

// stormSpec is a storm of the --publishers over clients.
func (s *strataCluster) stormSpec(what string, clients []*client.Client, lim *rate.Limiter, p *probe) stormSpec {
	o := s.b.opts
	return stormSpec{label: s.name + " " + what, publishers: o.Publishers, conns: len(clients), limiter: lim, probe: p, logf: s.b.logf,
		register: func(ctx context.Context, conn, i int) (int, error) {
			_, retries, err := publish(ctx, clients[conn], "bench."+serviceOf(i, o.Services), valueOf(1, i, o.ValueBytes))
			return retries, err
		},
		bulk: o.Bulk,
		registerMany: func(ctx context.Context, conn int, idx []int) error {
			items := make([]client.PublishItem, len(idx))
			for k, i := range idx {
				items[k] = client.PublishItem{DataID: "bench." + serviceOf(i, o.Services), Value: valueOf(1, i, o.ValueBytes)}
			}
			pctx, cancel := context.WithTimeout(ctx, requestTimeout)
			defer cancel()
			for k, r := range clients[conn].PublishMany(pctx, items) {
				if r.Err != nil {
					return fmt.Errorf("publisher %d: %w", idx[k], r.Err)
				}
			}
			return nil
		}}
}

// startProbe starts the probe: a publisher on the first session, a
// subscriber on the last, the first value seen before it returns.
func (s *strataCluster) startProbe(ctx context.Context) (*probeRun, error) {
	pubC, err := s.connect(ctx, 0)
	if err != nil {
		return nil, err
	}
	subC, err := s.connect(ctx, len(s.c.Sessions)-1)
	if err != nil {
		_ = pubC.Close()
		return nil, err
	}
	closers := []func(){func() { _ = pubC.Close() }, func() { _ = subC.Close() }}
	fail := func(err error) (*probeRun, error) {
		for _, c := range closers {
			c()
		}
		return nil, fmt.Errorf("probe: %w", err)
	}
	sub, err := subC.Subscribe(ctx, strataProbeKey)
	if err != nil {
		return fail(err)
	}
	p := newProbe()
	first := p.sent(time.Now())
	pub, _, err := publish(ctx, pubC, strataProbeKey, probeValue(first))
	if err != nil {
		return fail(err)
	}
	if _, err := waitSnapshot(ctx, sub, func(snap client.Snapshot) bool {
		seq, ok := probeSeqOf(snap)
		return ok && seq == first
	}); err != nil {
		return fail(fmt.Errorf("first value: %w", err))
	}
	p.arrived(first, time.Now())
	recv := func(ctx context.Context) {
		for {
			snap, err := sub.Next(ctx)
			if err != nil {
				return
			}
			if seq, ok := probeSeqOf(snap); ok {
				p.arrived(seq, time.Now())
			}
		}
	}
	send := func(ctx context.Context, seq uint64) error { return pub.Update(ctx, probeValue(seq)) }
	return startProbe(ctx, p, send, recv, closers...), nil
}

// probeSeqOf reads the probe's value number out of a snapshot.
func probeSeqOf(snap client.Snapshot) (uint64, bool) {
	if len(snap.Values) != 1 {
		return 0, false
	}
	return probeSeq(snap.Values[0].Data)
}

// waitSnapshot reads sub until a snapshot satisfies ok (at most
// connectTimeout) and returns when it arrived.
func waitSnapshot(ctx context.Context, sub *client.Subscription, ok func(client.Snapshot) bool) (time.Time, error) {
	return waitSnapshotFor(ctx, connectTimeout, sub, ok)
}

// waitSnapshotFor is waitSnapshot bounded by timeout.
func waitSnapshotFor(ctx context.Context, timeout time.Duration, sub *client.Subscription, ok func(client.Snapshot) bool) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		snap, err := sub.Next(ctx)
		if err != nil {
			return time.Time{}, err
		}
		if ok(snap) {
			return time.Now(), nil
		}
	}
}

// copies is the mean number of data nodes holding a slot (leader plus
// followers), from meta's slot table.
func (s *strataCluster) copies() (float64, error) {
	t, err := s.c.Table()
	if err != nil {
		return 0, fmt.Errorf("slot table: %w", err)
	}
	if len(t.Slots) == 0 {
		return 0, errors.New("slot table has no slots")
	}
	n := 0
	for _, sl := range t.Slots {
		n += 1 + len(sl.Followers)
	}
	return float64(n) / float64(len(t.Slots)), nil
}

// waitAllStored is waitStored with the copies from the slot table, read
// again at every look: a table read while slots move (a node marked
// failed under load and back) counts copies that are not there once the
// table settles.
func (s *strataCluster) waitAllStored(ctx context.Context, n int, timeout time.Duration) error {
	return s.waitStored(ctx, n, s.copies, timeout)
}

// waitStored waits (at most timeout) until the data nodes hold n
// publishers on their leaders and n*copies in all, and no session has
// writes waiting for a slot leader.
func (s *strataCluster) waitStored(ctx context.Context, n int, copiesNow func() (float64, error), timeout time.Duration) error {
	return poll(ctx, timeout, func() error {
		copies, err := copiesNow()
		if err != nil {
			return err
		}
		var leaders, all float64
		for _, d := range s.c.Datas {
			m, err := s.c.Scrape(d)
			if err != nil {
				return err
			}
			leaders += m[metricDataLeaders]
			all += m[metricDataPublishers]
		}
		backlog, err := s.sum(chaos.RoleSession, metricSessionBacklog)
		if err != nil {
			return err
		}
		if leaders < float64(n) || all < float64(n)*copies-0.5 || backlog > 0 {
			return fmt.Errorf("data nodes hold %.0f publishers on leaders and %.0f in all (want %d and %.0f), %.0f writes waiting in sessions",
				leaders, all, n, float64(n)*copies, backlog)
		}
		return nil
	})
}

// waitDrained waits until no session and no data node holds a publisher.
func (s *strataCluster) waitDrained(ctx context.Context) error {
	return poll(ctx, time.Minute, func() error {
		pubs, err := s.sum(chaos.RoleSession, metricSessionPubs)
		if err != nil {
			return err
		}
		data, err := s.sum(chaos.RoleData, metricDataPublishers)
		if err != nil {
			return err
		}
		if pubs > 0 || data > 0 {
			return fmt.Errorf("after the storm's clients closed, sessions hold %.0f publishers and data nodes %.0f", pubs, data)
		}
		return nil
	})
}

// restart registers n publishers of one service on 100 clients, then
// closes those clients and at the same moment opens 100 new ones that
// register n new publishers, and times until a subscriber on the last
// session sees all n new ones.
func (s *strataCluster) restart(ctx context.Context, n int) (*RestartResult, error) {
	conns := min(spreadConns, n)
	subC, err := s.connect(ctx, len(s.c.Sessions)-1)
	if err != nil {
		return nil, err
	}
	defer func() { _ = subC.Close() }()
	sub, err := subC.Subscribe(ctx, strataRestartKey)
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	old, err := s.connectMany(ctx, conns, 0)
	if err != nil {
		return nil, err
	}
	defer closeAll(old)
	if err := s.publishShares(ctx, old, n, 1); err != nil {
		return nil, fmt.Errorf("first generation: %w", err)
	}
	if _, err := waitSnapshotFor(ctx, time.Minute, sub, hasGeneration(n, 1)); err != nil {
		return nil, fmt.Errorf("first generation never complete at the subscriber: %w", err)
	}
	seen := make(chan error, 1)
	var seenAt time.Time
	start := time.Now()
	go func() {
		var err error
		seenAt, err = waitSnapshotFor(ctx, 5*time.Minute, sub, hasGeneration(n, 2))
		seen <- err
	}()
	var closed time.Duration
	var wg sync.WaitGroup
	wg.Go(func() {
		closeAll(old)
		closed = time.Since(start)
	})
	renewed, err := s.connectMany(ctx, conns, 0)
	if err != nil {
		wg.Wait()
		return nil, err
	}
	defer closeAll(renewed)
	err = s.publishShares(ctx, renewed, n, 2)
	acked := time.Since(start)
	wg.Wait()
	if err != nil {
		return nil, fmt.Errorf("second generation: %w", err)
	}
	if err := <-seen; err != nil {
		return nil, fmt.Errorf("second generation never complete at the subscriber: %w", err)
	}
	return &RestartResult{Publishers: n, Clients: conns, CloseMs: ms(closed), AckedMs: ms(acked), ConvergeMs: ms(seenAt.Sub(start))}, nil
}

// publishShares publishes n publishers of generation gen under the
// restart key, spread over clients, each client one after another.
func (s *strataCluster) publishShares(ctx context.Context, clients []*client.Client, n, gen int) error {
	vb := s.b.opts.ValueBytes
	g, gctx := errgroup.WithContext(ctx)
	for k, cl := range clients {
		g.Go(func() error {
			for _, i := range share(k, len(clients), n) {
				if _, _, err := publish(gctx, cl, strataRestartKey, valueOf(gen, i, vb)); err != nil {
					return fmt.Errorf("publisher %d: %w", i, err)
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// hasGeneration reports whether a snapshot holds at least n values of
// generation gen.
func hasGeneration(n, gen int) func(client.Snapshot) bool {
	return func(snap client.Snapshot) bool {
		c := 0
		for _, v := range snap.Values {
			if generationOf(v.Data) == gen {
				c++
			}
		}
		return c >= n
	}
}

// fanout subscribes subs times to one key over 100 clients spread over
// the sessions (the first on another session than the publisher's) and
// times rounds updates to every one of them.
func (s *strataCluster) fanout(ctx context.Context, subs, rounds int) (*FanoutResult, error) {
	conns := min(spreadConns, subs)
	pubC, err := s.connect(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer func() { _ = pubC.Close() }()
	clients, err := s.connectMany(ctx, conns, 1)
	if err != nil {
		return nil, err
	}
	defer closeAll(clients)
	f := newFanout(subs)
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	g, gctx := errgroup.WithContext(ctx)
	for k, cl := range clients {
		g.Go(func() error {
			for _, w := range share(k, conns, subs) {
				sub, err := cl.Subscribe(gctx, strataFanoutKey)
				if err != nil {
					return fmt.Errorf("subscription %d: %w", w, err)
				}
				wg.Go(func() {
					for {
						snap, err := sub.Next(wctx)
						if err != nil {
							return
						}
						if len(snap.Values) == 1 {
							f.saw(w, string(snap.Values[0].Data), time.Now())
						}
					}
				})
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var pub *client.Publication
	send := func(ctx context.Context, v string) error {
		if pub == nil {
			var err error
			pub, _, err = publish(ctx, pubC, strataFanoutKey, []byte(v))
			return err
		}
		uctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		return pub.Update(uctx, []byte(v))
	}
	lat, err := f.run(ctx, rounds, 10*time.Second, send, s.b.logf, s.name+" fanout")
	if err != nil {
		return nil, err
	}
	return &FanoutResult{Subscribers: subs, Conns: conns, Rounds: rounds, Latency: lat}, nil
}

// strataPaced runs the paced storm on a fresh cluster of shape: the
// --publishers again, all clients together at etcdRate, with the probe.
func (b *bench) strataPaced(ctx context.Context, shape Shape, pair int, etcdRate float64, res *SystemResult) {
	o := b.opts
	b.phase(ctx, res, phasePaced, o.PhaseTimeout, func(ctx context.Context) error {
		sc, err := b.startStrata(ctx, shape, b.path(fmt.Sprintf("strata-%s-pair%d-paced", shape.dirName(), pair+1)))
		if err != nil {
			return err
		}
		defer sc.close()
		r, err := sc.newRig(ctx)
		if err != nil {
			return err
		}
		defer r.close(ctx)
		lim := rate.NewLimiter(rate.Limit(etcdRate), o.Clients)
		out, lat, err := r.storm(ctx, phasePaced, fmt.Sprintf("paced storm (%s/s)", commas(int64(etcdRate))), lim)
		if err != nil {
			return err
		}
		res.Paced = newStormResult(o, out, lat, etcdRate)
		return nil
	})
}

// strataMillion registers --million-publishers (1,000,000) publishers on
// a fresh 3/3/2 cluster with --clients clients, stopping if a node's RSS
// passes 8 GiB, waits until the data nodes hold them all, and reads
// every node's memory at the end.
func (b *bench) strataMillion(ctx context.Context) *MillionResult {
	o := b.opts
	shape := millionShape()
	res := &MillionResult{Shape: shape.String(), Publishers: o.MillionPublishers, Clients: o.Clients}
	sys := &SystemResult{System: "strata " + shape.String()}
	b.phase(ctx, sys, phaseMillion, 3*o.PhaseTimeout, func(ctx context.Context) error {
		sc, err := b.startStrata(ctx, shape, b.path("strata-"+shape.dirName()+"-million"))
		if err != nil {
			return err
		}
		defer sc.close()
		clients, err := sc.connectMany(ctx, o.Clients, 0)
		if err != nil {
			return err
		}
		defer closeAll(clients)
		spec := sc.stormSpec("million", clients, nil, nil)
		spec.publishers = o.MillionPublishers
		spec.check = sc.rssBelow(millionRSSLimit)
		start := time.Now()
		out, err := runStorm(ctx, spec)
		res.Registered, res.Seconds, res.Rate = out.registered, out.elapsed.Seconds(), out.rate()
		if err == nil {
			err = sc.waitAllStored(ctx, o.MillionPublishers, 5*time.Minute)
			res.StoredSeconds = time.Since(start).Seconds()
		}
		res.Nodes = sc.memoryNow()
		return err
	})
	res.Errors = sys.Errors
	return res
}

// rssBelow is a storm check: an error once a node's RSS passes limit.
func (s *strataCluster) rssBelow(limit float64) func() error {
	return func() error {
		for _, n := range s.c.Nodes() {
			m, err := s.c.Scrape(n)
			if err != nil {
				continue // a slow scrape is no reason to stop
			}
			if rss := m[metricRSS]; rss > limit {
				return fmt.Errorf("aborted: %s's RSS is %.2f GiB, over the %.0f GiB bound", n.ID, rss/(1<<30), limit/(1<<30))
			}
		}
		return nil
	}
}

// memoryNow reads every node's memory once (nodes that do not answer are
// left out).
func (s *strataCluster) memoryNow() []NodeMemory {
	var out []NodeMemory
	for _, n := range s.c.Nodes() {
		m, err := s.c.Scrape(n)
		if err != nil {
			continue
		}
		if mem, err := memOf(m); err == nil {
			out = append(out, NodeMemory{ID: n.ID, Role: n.Role, After: mem})
		}
	}
	return out
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
