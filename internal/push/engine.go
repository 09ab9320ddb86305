package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/strata-registry/strata/internal/clock"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Engine pushes datums to subscribers. All methods are safe for concurrent
// use; none of them blocks on a client or on the data tier (Fetch runs only
// on the engine's own workers, started by Run).
type Engine struct {
	cfg     Config
	fetcher Fetcher
	clock   clock.Clock
	logger  *slog.Logger
	m       *metrics

	ready   chan struct{}
	started atomic.Bool
	// wake holds up to FetchWorkers tokens; a worker that finds the queue
	// empty sleeps on it, so a notice for a quiet key starts a fetch at once.
	wake chan struct{}
	// tickDone, when set by a test, receives the time each processed tick
	// ran the timers at.
	tickDone chan int64

	mu    sync.Mutex
	keys  map[string]*keyState
	conns map[string]*connState
	// queue holds keys ready to fetch, each at most once (state queued).
	queue     []*keyState
	keyTimers timerHeap[*keyState] // fetch retries and coalesce waits
	subTimers timerHeap[*sub]      // ack timeouts
}

// key states
const (
	keyIdle     uint8 = iota
	keyQueued         // in e.queue
	keyFetching       // a worker is fetching it
	keyRetry          // in keyTimers after a failed (or stale) fetch
	keyCoalesce       // in keyTimers waiting for Config.Coalesce
)

// keyState is one dataInfoID with local subscribers.
type keyState struct {
	timer
	key   string
	subs  []*sub
	datum *registryv1.Datum // last good datum; nil until the first fetch succeeds
	// fetched is datum's version; want is the highest version a notice
	// announced. want > fetched means a fetch is due, queued or running.
	fetched, want uint64
	// noticeAt is when the oldest change not yet fetched was announced
	// (unix ns), the start of the latency the pushes carrying it measure.
	noticeAt  int64
	lastStart int64 // when the last fetch started, for Coalesce
	state     uint8
	again     bool  // a newer notice came during the fetch
	fails     uint8 // consecutive failed (or stale) fetches
	all       *view
	zones     map[string]*view
}

func (k *keyState) tm() *timer { return &k.timer }

// view is the publisher list for one scope of one datum version, built once
// and shared by every push of it.
type view struct {
	pubs   []*registryv1.Publisher
	size   int
	shared *Shared
}

// connState is one connection with subscribers.
type connState struct {
	c        Conn
	zone     string
	subs     map[string]*sub
	inflight int64
	dead     bool // dropped, or about to be, in this critical section
}

// sub is one subscriber: small, as idle subscriptions must be cheap.
type sub struct {
	timer // ack timeout of the pending push
	id    string
	conn  *connState
	key   *keyState
	idx   int32 // position in key.subs
	scope Scope
	// fresh: nothing has been pushed yet, so even version 0 is pushed.
	fresh    bool
	pending  bool // a push of pendVer is unacked
	attempts uint8
	pushed   uint64 // highest version sent (or held by the client); only grows
	pendVer  uint64
	inflight int64 // bytes sent to this subscriber and not acked
	sentAt   int64 // latency start of the pending push (unix ns)
}

func (s *sub) tm() *timer { return &s.timer }

// New validates cfg and deps and returns an engine. It starts nothing; call
// Run. Until Run runs, notices queue up (one entry per key) but nothing is
// fetched.
func New(cfg Config, deps Deps) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Fetcher == nil {
		return nil, fmt.Errorf("%w: a Fetcher is required", ErrBadConfig)
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, fmt.Errorf("push: register metrics: %w", err)
	}
	return &Engine{
		cfg:     cfg,
		fetcher: deps.Fetcher,
		clock:   clock.Or(deps.Clock),
		logger:  logger.With("component", "push"),
		m:       m,
		ready:   make(chan struct{}),
		wake:    make(chan struct{}, cfg.FetchWorkers),
		keys:    make(map[string]*keyState),
		conns:   make(map[string]*connState),
	}, nil
}

// Run starts the fetch workers and the timer loop and blocks until ctx ends
// and all of them have returned. It returns nil after ctx ends, or an error
// if called more than once.
func (e *Engine) Run(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return errors.New("push: Run called twice")
	}
	t := e.clock.NewTicker(e.cfg.Tick)
	defer t.Stop()
	var wg sync.WaitGroup
	for range e.cfg.FetchWorkers {
		wg.Go(func() { e.worker(ctx) })
	}
	wg.Go(func() { e.timerLoop(ctx, t) })
	close(e.ready)
	wg.Wait()
	return nil
}

// Ready is closed once Run has started its goroutines.
func (e *Engine) Ready() <-chan struct{} { return e.ready }

// Subscribe adds subscriber subscriberID on connection c for key, replacing
// a subscriber of that ID on c. pushedVersion is the version the client
// already holds (0 for none, as for a new subscription; a client replaying
// its subscriptions after a reconnect passes its last version). If the
// engine holds a datum of key newer than pushedVersion (or any datum, for
// pushedVersion 0) it pushes it to this subscriber alone at once, possibly
// an empty list; if it holds none yet, it starts a fetch and the result is
// pushed. Never blocks.
func (e *Engine) Subscribe(c Conn, subscriberID, key string, scope Scope, pushedVersion uint64) {
	var fx effects
	e.mu.Lock()
	now := e.now()
	cs := e.conns[c.ID()]
	if cs == nil {
		cs = &connState{c: c, zone: c.Zone(), subs: make(map[string]*sub, 1)}
		e.conns[c.ID()] = cs
		e.m.conns.Inc()
	}
	if old := cs.subs[subscriberID]; old != nil {
		e.removeSub(old)
	}
	k := e.keys[key]
	if k == nil {
		k = &keyState{key: key}
		e.keys[key] = k
	}
	s := &sub{id: subscriberID, conn: cs, key: k, idx: int32(len(k.subs)), scope: scope,
		fresh: pushedVersion == 0, pushed: pushedVersion}
	k.subs = append(k.subs, s)
	cs.subs[subscriberID] = s
	e.m.subscribers.Inc()
	switch {
	case k.datum != nil:
		if s.fresh || s.pushed < k.fetched {
			e.push(s, now, now, &fx)
		}
	case k.state == keyIdle:
		if k.noticeAt == 0 {
			k.noticeAt = now
		}
		e.trigger(k, now, &fx)
	}
	// Otherwise a fetch is queued or running (its result reaches s) or
	// failing (s waits for the first good datum, never an empty guess).
	e.endCritical(&fx)
	e.mu.Unlock()
	fx.run(e)
}

// Unsubscribe removes a subscriber; its unacked push is forgotten. Unknown
// IDs are ignored.
func (e *Engine) Unsubscribe(connID, subscriberID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cs := e.conns[connID]
	if cs == nil {
		return
	}
	if s := cs.subs[subscriberID]; s != nil {
		e.removeSub(s)
	}
	if len(cs.subs) == 0 {
		e.removeConn(connID, cs)
	}
}

// RemoveConn forgets a connection and all its subscribers (the session
// calls it when the stream ends). It does not call Close.
func (e *Engine) RemoveConn(connID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if cs := e.conns[connID]; cs != nil {
		e.dropConn(connID, cs)
	}
}

// Notify announces that key changed to version (a data node's change
// notice, or the version scan finding a lost one). Notices for keys without
// subscribers, or not newer than what the engine fetched or already awaits,
// are ignored. A quiet key is fetched at once; a notice during a fetch of
// the key merges into one follow-up fetch; a notice while the key waits to
// retry a failed fetch retries at once. Never blocks.
func (e *Engine) Notify(key string, version uint64) { e.NotifyAt(key, version, time.Time{}) }

// NotifyAt is Notify for a change made at changed (the data node's clock;
// zero means now): push latency is measured from it. A time in the future
// (clock skew between nodes) counts as now.
func (e *Engine) NotifyAt(key string, version uint64, changed time.Time) {
	var fx effects
	e.mu.Lock()
	k := e.keys[key]
	// A notice no newer than what is wanted is no news, except to a key
	// waiting out a failed fetch: the node that refused it says the key
	// is readable again (a handover completed), so the backoff ends.
	if k == nil || len(k.subs) == 0 || (k.datum != nil && version <= k.fetched) || (version <= k.want && k.state != keyRetry) {
		e.mu.Unlock()
		return
	}
	now := e.now()
	k.want = max(k.want, version)
	k.noted(now, changed)
	e.trigger(k, now, &fx)
	e.mu.Unlock()
	fx.run(e)
}

// RetryNow ends the backoff of every key waiting to retry a failed
// fetch: a new slot table may have given it a leader that answers. One
// pass over the engine's keys.
func (e *Engine) RetryNow() {
	var fx effects
	e.mu.Lock()
	now := e.now()
	for _, k := range e.keys {
		if k.state == keyRetry {
			e.trigger(k, now, &fx)
		}
	}
	e.mu.Unlock()
	fx.run(e)
}

// Offer hands the engine a key's whole datum that came with its change
// notice (changed as for NotifyAt), sparing a fetch: when the key is quiet
// (or waiting to retry a failed fetch) the datum is pushed at once, exactly
// as if a fetch had returned it. Otherwise (a fetch in flight or queued,
// or the follow-up cap holding the key back) it counts as a notice of its
// version, and the key's usual fetch carries it. Datums not newer than
// what the engine has are ignored. The engine keeps d: the caller must not
// modify it. Never blocks.
func (e *Engine) Offer(d *registryv1.Datum, changed time.Time) {
	var fx effects
	e.mu.Lock()
	k := e.keys[d.GetDataInfoId()]
	if k == nil || len(k.subs) == 0 || (k.datum != nil && d.GetVersion() <= k.fetched) {
		e.mu.Unlock()
		return
	}
	now := e.now()
	k.noted(now, changed)
	k.want = max(k.want, d.GetVersion())
	switch {
	case k.state == keyRetry:
		e.keyTimers.cancel(k)
		fallthrough
	case k.state == keyIdle && !e.coalescing(k, now):
		k.lastStart = now
		e.fetchDone(k, d, nil, false, &fx)
		e.endCritical(&fx)
	default:
		e.trigger(k, now, &fx)
	}
	e.mu.Unlock()
	fx.run(e)
}

// Ack records the client's ack of version for a subscriber. An ack of the
// newest pushed version (or later) ends its retries and releases the bytes
// in flight for that subscriber; an ack of an older, superseded version
// changes nothing. Unknown IDs are ignored.
func (e *Engine) Ack(connID, subscriberID string, version uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if cs := e.conns[connID]; cs != nil {
		e.ack(cs, subscriberID, version, 0)
	}
}

// AckAll is Ack for every subscriber one push named (first, then also),
// under one lock. A push never names more subscribers than its connection
// has, so IDs past that count are ignored: one ack costs no more than the
// client's own subscriptions. held is how long the client says it held the
// ack (Config.AckDelay) and is left out of the push latency; the claim is
// capped at twice AckDelay, so a client can shorten its own samples by no
// more than that.
func (e *Engine) AckAll(connID string, version uint64, first string, also []string, held time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cs := e.conns[connID]
	if cs == nil {
		return
	}
	held = min(max(held, 0), 2*e.cfg.AckDelay)
	e.ack(cs, first, version, held)
	for _, id := range also[:min(len(also), len(cs.subs))] {
		e.ack(cs, id, version, held)
	}
}

// ack settles subscriberID's pending push if version covers it; held is
// left out of its latency. Caller holds e.mu.
func (e *Engine) ack(cs *connState, subscriberID string, version uint64, held time.Duration) {
	s := cs.subs[subscriberID]
	if s == nil || !s.pending || version < s.pendVer {
		return
	}
	e.m.latency.Observe(max(time.Duration(e.now()-s.sentAt)-held, 0).Seconds())
	e.settle(s)
}

// Keys returns the keys that have subscribers, in no order, for the
// session's version scan.
func (e *Engine) Keys() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.keys))
	for key, k := range e.keys {
		if len(k.subs) > 0 {
			out = append(out, key)
		}
	}
	return out
}

// Fetched returns the version of the last good datum of key (0 if none or
// if key has no subscribers). The version scan calls Notify for a key whose
// data-node version is higher.
func (e *Engine) Fetched(key string) uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if k := e.keys[key]; k != nil {
		return k.fetched
	}
	return 0
}

func (e *Engine) now() int64 { return e.clock.Now().UnixNano() }

// effects collects what must happen after e.mu is released: connections to
// close and workers to wake.
type effects struct {
	dead   []*connState
	closes []closeReq
	wake   int
	sends  sendBatch
}

// sendBatch gathers a critical section's pushes so that the subscribers of
// one list on one connection get one Push: a fan-out to a key with many
// subscribers per connection hands each connection one Push, not one per
// subscriber. endCritical sends them.
type sendBatch struct {
	pushes []batched
	index  map[batchKey]int // into pushes; built once there are many
}

type batchKey struct {
	cs *connState
	v  *view // one list: key, version and scope
}

type batched struct {
	batchKey
	p *Push
}

// linearBatch is how many pushes a sendBatch searches one by one before it
// indexes them.
const linearBatch = 8

// find returns the Push of k's list already in the batch, or nil.
func (b *sendBatch) find(k batchKey) *Push {
	if b.index != nil {
		if i, ok := b.index[k]; ok {
			return b.pushes[i].p
		}
		return nil
	}
	for _, x := range b.pushes {
		if x.batchKey == k {
			return x.p
		}
	}
	return nil
}

func (b *sendBatch) add(k batchKey, p *Push) {
	b.pushes = append(b.pushes, batched{k, p})
	switch {
	case b.index != nil:
		b.index[k] = len(b.pushes) - 1
	case len(b.pushes) > linearBatch:
		b.index = make(map[batchKey]int, 2*len(b.pushes))
		for i, x := range b.pushes {
			b.index[x.batchKey] = i
		}
	}
}

type closeReq struct {
	c      Conn
	reason string
}

// kill marks a connection to be dropped before the lock is released; its
// subscribers are skipped meanwhile (a fan-out loop must not lose its place).
func (fx *effects) kill(cs *connState, reason string) {
	if cs.dead {
		return
	}
	cs.dead = true
	fx.dead = append(fx.dead, cs)
	fx.closes = append(fx.closes, closeReq{cs.c, reason})
}

func (fx *effects) run(e *Engine) {
	for range fx.wake {
		select {
		case e.wake <- struct{}{}:
		default:
			// FetchWorkers tokens are pending: enough workers will look.
		}
	}
	for _, r := range fx.closes {
		e.logger.Info("disconnecting client", "conn", r.c.ID(), "reason", r.reason)
		r.c.Close(r.reason)
	}
}

// endCritical ends a critical section's work under e.mu: it sends the
// batched pushes, then drops the connections fx.kill marked (a failed send
// marks one too). The caller then unlocks and calls fx.run.
func (e *Engine) endCritical(fx *effects) {
	for _, b := range fx.sends.pushes {
		if b.cs.dead {
			continue
		}
		if err := b.cs.c.Send(b.p); err != nil {
			e.m.sendFailed.Inc()
			fx.kill(b.cs, "push: send failed: "+err.Error())
			continue
		}
		e.m.sent.Add(float64(len(b.p.SubscriberIDs)))
	}
	fx.sends = sendBatch{}
	for _, cs := range fx.dead {
		if e.conns[cs.c.ID()] == cs {
			e.dropConn(cs.c.ID(), cs)
		}
	}
	fx.dead = fx.dead[:0]
}

// dropConn removes a connection and its subscribers. Caller holds e.mu.
func (e *Engine) dropConn(id string, cs *connState) {
	cs.dead = true
	for _, s := range cs.subs {
		e.removeSub(s)
	}
	e.removeConn(id, cs)
}

func (e *Engine) removeConn(id string, cs *connState) {
	delete(e.conns, id)
	e.m.conns.Dec()
}

// removeSub unlinks s from its key and connection. Caller holds e.mu.
func (e *Engine) removeSub(s *sub) {
	e.settle(s)
	k := s.key
	last := len(k.subs) - 1
	if int(s.idx) != last {
		k.subs[s.idx] = k.subs[last]
		k.subs[s.idx].idx = s.idx
	}
	k.subs[last] = nil
	k.subs = k.subs[:last]
	if cap(k.subs) > 16 && len(k.subs) < cap(k.subs)/4 {
		k.subs = append([]*sub(nil), k.subs...)
	}
	delete(s.conn.subs, s.id)
	e.m.subscribers.Dec()
	e.gcKey(k)
}

// gcKey forgets a key without subscribers unless a worker holds it (the
// worker forgets it when done, so a key is never fetched twice at once).
func (e *Engine) gcKey(k *keyState) {
	if len(k.subs) > 0 {
		return
	}
	switch k.state {
	case keyQueued, keyFetching:
		return
	case keyRetry, keyCoalesce:
		e.keyTimers.cancel(k)
	}
	if e.keys[k.key] == k {
		delete(e.keys, k.key)
	}
}

// settle ends s's pending push: it releases its bytes and cancels its timer.
func (e *Engine) settle(s *sub) {
	if s.inflight != 0 {
		s.conn.inflight -= s.inflight
		e.m.inflight.Sub(float64(s.inflight))
		s.inflight = 0
	}
	if s.pending {
		e.m.unacked.Dec()
	}
	s.pending = false
	s.attempts = 0
	e.subTimers.cancel(s)
}

// trigger gets k fetched as soon as the rules allow. Caller holds e.mu.
func (e *Engine) trigger(k *keyState, now int64, fx *effects) {
	switch k.state {
	case keyFetching:
		k.again = true
	case keyQueued, keyCoalesce:
	case keyRetry:
		// A newer notice ends the backoff: the failure may be over.
		e.keyTimers.cancel(k)
		e.enqueue(k, fx)
	case keyIdle:
		if e.coalescing(k, now) {
			k.state = keyCoalesce
			e.keyTimers.schedule(k, k.lastStart+int64(e.cfg.Coalesce))
			return
		}
		e.enqueue(k, fx)
	}
}

// coalescing reports whether the follow-up cap (Config.Coalesce) still
// holds k back: its last fetch started less than the cap ago.
func (e *Engine) coalescing(k *keyState, now int64) bool {
	c := int64(e.cfg.Coalesce)
	return c > 0 && k.lastStart != 0 && now < k.lastStart+c
}

// noted starts k's latency clock, unless it runs already: at changed (the
// data node's time of the change; zero means now), or now if that is in
// the future (clock skew).
func (k *keyState) noted(now int64, changed time.Time) {
	if k.noticeAt != 0 {
		return
	}
	k.noticeAt = now
	if !changed.IsZero() {
		k.noticeAt = min(now, changed.UnixNano())
	}
}

func (e *Engine) enqueue(k *keyState, fx *effects) {
	k.state = keyQueued
	e.queue = append(e.queue, k)
	fx.wake++
}

// next pops the next key to fetch and marks it fetching, or returns nil.
// Caller holds e.mu.
func (e *Engine) next(now int64) *keyState {
	for len(e.queue) > 0 {
		k := e.queue[0]
		e.queue[0] = nil
		e.queue = e.queue[1:]
		if len(e.queue) == 0 {
			e.queue = e.queue[:0:0]
		}
		k.state = keyIdle
		if len(k.subs) == 0 {
			e.gcKey(k)
			continue
		}
		k.state = keyFetching
		k.again = false
		k.lastStart = now
		return k
	}
	return nil
}

func (e *Engine) worker(ctx context.Context) {
	for {
		e.mu.Lock()
		k := e.next(e.now())
		e.mu.Unlock()
		if k == nil {
			select {
			case <-ctx.Done():
				return
			case <-e.wake:
				continue
			}
		}
		e.m.fetches.Inc()
		fctx, cancel := context.WithTimeout(ctx, e.cfg.FetchTimeout)
		d, err := e.fetcher.Fetch(fctx, k.key)
		cancel()
		var fx effects
		e.mu.Lock()
		e.fetchDone(k, d, err, ctx.Err() != nil, &fx)
		e.endCritical(&fx)
		e.mu.Unlock()
		fx.run(e)
		if ctx.Err() != nil {
			return
		}
	}
}

// fetchDone applies a fetch result. Caller holds e.mu.
func (e *Engine) fetchDone(k *keyState, d *registryv1.Datum, err error, stopping bool, fx *effects) {
	k.state = keyIdle
	if len(k.subs) == 0 || stopping {
		e.gcKey(k)
		return
	}
	now := e.now()
	if err == nil && d == nil {
		err = errors.New("fetcher returned no datum")
	}
	if err != nil {
		e.m.fetchFailed.Inc()
		e.logger.Debug("fetch failed, keeping last datum", "key", k.key, "fetched", k.fetched, "err", err)
		e.retryFetch(k, now, fx)
		return
	}
	if k.datum == nil || d.Version > k.fetched {
		k.datum, k.fetched = d, d.Version
		k.all, k.zones = nil, nil
		at := k.noticeAt
		if at == 0 {
			at = now
		}
		for _, s := range k.subs {
			if !s.conn.dead && (s.fresh || s.pushed < k.fetched) {
				e.push(s, at, now, fx)
			}
		}
	}
	if k.fetched >= k.want {
		k.fails = 0
		k.noticeAt = 0
		k.again = false
		return
	}
	// A notice announced a version this fetch did not return.
	if k.again {
		// Newer changes came during the fetch: one follow-up carries them all.
		k.fails = 0
		k.again = false
		e.trigger(k, now, fx)
		return
	}
	// The node answered with an older version than it announced (a lagging
	// replica, a leader change): try again later rather than lose it.
	e.retryFetch(k, now, fx)
}

func (e *Engine) retryFetch(k *keyState, now int64, fx *effects) {
	if k.again {
		k.again = false
		e.enqueue(k, fx)
		return
	}
	if k.fails < 62 {
		k.fails++
	}
	k.state = keyRetry
	e.keyTimers.schedule(k, now+int64(backoff(e.cfg.RetryBase, e.cfg.RetryMax, k.fails-1)))
}

// backoff is base doubled n times, at most max.
func backoff(base, max time.Duration, n uint8) time.Duration {
	d := base
	for range n {
		if d >= max/2 {
			return max
		}
		d *= 2
	}
	return min(d, max)
}

// viewFor returns the publisher list k's datum carries for scope at zone.
func (e *Engine) viewFor(k *keyState, scope Scope, zone string) *view {
	if scope != ScopeZone {
		if k.all == nil {
			k.all = newView(k.key, k.datum.GetPublishers())
		}
		return k.all
	}
	if v := k.zones[zone]; v != nil {
		return v
	}
	var pubs []*registryv1.Publisher
	for _, p := range k.datum.GetPublishers() {
		if p.GetZone() == zone {
			pubs = append(pubs, p)
		}
	}
	v := newView(k.key, pubs)
	if k.zones == nil {
		k.zones = make(map[string]*view, 1)
	}
	k.zones[zone] = v
	return v
}

// newView sizes a list as the push message would encode it, roughly.
func newView(key string, pubs []*registryv1.Publisher) *view {
	size := len(key) + 32
	for _, p := range pubs {
		size += proto.Size(p) + 4
	}
	return &view{pubs: pubs, size: size, shared: &Shared{}}
}

// push sends k's datum to s: a new version, or a retry of the pending one.
// at is the latency start for a new version. The push joins fx's batch
// (endCritical sends it): a subscriber of a list that already goes to its
// connection in this batch rides along, and adds no bytes in flight, as
// the list crosses the wire once. Caller holds e.mu.
func (e *Engine) push(s *sub, at, now int64, fx *effects) {
	k, cs := s.key, s.conn
	v := e.viewFor(k, s.scope, cs.zone)
	bk := batchKey{cs, v}
	var size int64
	if p := fx.sends.find(bk); p != nil {
		p.SubscriberIDs = append(p.SubscriberIDs, s.id)
	} else {
		size = int64(v.size)
		// A single push larger than the cap still goes out on an idle
		// connection; otherwise the client could never be served.
		if cs.inflight > 0 && cs.inflight+size > e.cfg.MaxInflightBytes {
			e.m.stalled.Inc()
			fx.kill(cs, fmt.Sprintf("push: client stalled: %d bytes in flight, cap %d", cs.inflight, e.cfg.MaxInflightBytes))
			return
		}
		// Room for the connection's other subscribers of the list (all of
		// its subscribers, or a few: most are of other keys).
		ids := append(make([]string, 0, min(len(cs.subs), 16)), s.id)
		fx.sends.add(bk, &Push{SubscriberIDs: ids, Key: k.key, Version: k.fetched, Publishers: v.pubs,
			InstanceStates: k.datum.GetInstanceStates(), Size: v.size, Shared: v.shared})
	}
	if s.pending && s.pendVer == k.fetched {
		e.m.retried.Inc()
		if s.attempts < 62 {
			s.attempts++
		}
	} else {
		if s.pending {
			e.m.superseded.Inc()
		} else {
			e.m.unacked.Inc()
		}
		s.attempts = 0
		s.sentAt = at
	}
	s.pending, s.fresh = true, false
	s.pendVer, s.pushed = k.fetched, k.fetched
	// Bytes of superseded pushes stay counted until the newest is acked:
	// they are still in the writer's queue or on the wire.
	if size > 0 {
		s.inflight += size
		cs.inflight += size
		e.m.inflight.Add(float64(size))
	}
	e.subTimers.schedule(s, now+int64(backoff(e.cfg.AckTimeout, e.cfg.RetryMax, s.attempts)))
}

func (e *Engine) timerLoop(ctx context.Context, t clock.Ticker) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		now := e.fire()
		if e.tickDone != nil {
			select {
			case e.tickDone <- now:
			case <-ctx.Done():
				return
			}
		}
	}
}

// fire runs the timers that are due and returns the time it used.
func (e *Engine) fire() int64 {
	var fx effects
	e.mu.Lock()
	now := e.now()
	for {
		k, ok := e.keyTimers.popDue(now)
		if !ok {
			break
		}
		k.state = keyIdle
		if len(k.subs) == 0 {
			e.gcKey(k)
			continue
		}
		e.enqueue(k, &fx)
	}
	for {
		s, ok := e.subTimers.popDue(now)
		if !ok {
			break
		}
		if s.pending && !s.conn.dead {
			// Resends the pending version, or the current one if newer.
			e.push(s, now, now, &fx)
		}
	}
	e.endCritical(&fx)
	e.mu.Unlock()
	fx.run(e)
	return now
}
