package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/strata-registry/strata/internal/chaos"
)

// The keys the etcd phases use; the storm's are /services/svc0000/... on.
const (
	etcdProbeKey   = "/bench/probe"
	etcdRestartKey = "/services/restart/"
	etcdFanoutKey  = "/bench/fanout"
)

// etcd's settings here.
const (
	// etcdLeaseTTL is every client's lease, in seconds.
	etcdLeaseTTL = 30
	// etcdRole is etcd's role in memory tables.
	etcdRole = "etcd"
	// etcdStopGrace is how long stop waits after SIGTERM; etcdStartTimeout
	// how long start waits for /health.
	etcdStopGrace    = 10 * time.Second
	etcdStartTimeout = 30 * time.Second
)

// etcdServer is a single-node etcd process on loopback with default
// settings (fsync on, as in production), its data and log in its own
// directory.
type etcdServer struct {
	// endpoint is the client address, host:port; /metrics and /health
	// are served there too.
	endpoint string
	// dir holds etcd's data, its log and the heap profiles the
	// footprints keep (heap/).
	dir   string
	cmd   *exec.Cmd
	done  chan struct{} // closed once the process has exited
	httpc *http.Client
	logf  func(format string, args ...any)
}

// startEtcd starts etcd with its data and log (etcd.log) under dir, on
// two free loopback ports, and waits until it reports itself healthy.
func startEtcd(ctx context.Context, dir string, logf func(string, ...any)) (*etcdServer, error) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		return nil, fmt.Errorf("etcd not found (apt-get install etcd-server; make bench-scale does it): %w", err)
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	clientURL, peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0]), fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("etcd dir: %w", err)
	}
	log, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		return nil, fmt.Errorf("etcd log: %w", err)
	}
	cmd := exec.Command(bin, "--name", "bench", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "bench="+peerURL, "--initial-cluster-state", "new",
		// pprof on the client URL: the footprints force a GC through it.
		"--enable-pprof")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	e := &etcdServer{endpoint: strings.TrimPrefix(clientURL, "http://"), dir: dir, cmd: cmd, done: make(chan struct{}),
		httpc: &http.Client{Timeout: 2 * time.Second}, logf: logf}
	go func() {
		_ = cmd.Wait()
		_ = log.Close()
		close(e.done)
	}()
	if err := poll(ctx, etcdStartTimeout, e.healthy); err != nil {
		e.stop()
		return nil, fmt.Errorf("etcd did not become healthy (see %s): %w", filepath.Join(dir, "etcd.log"), err)
	}
	logf("etcd: up on %s (data and log in %s)", e.endpoint, dir)
	return e, nil
}

// freePorts finds n free loopback ports by binding them all at once and
// closing them again.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// healthy reports nil once etcd answers /health with a leader.
func (e *etcdServer) healthy() error {
	select {
	case <-e.done:
		return errors.New("etcd exited")
	default:
	}
	resp, err := e.httpc.Get("http://" + e.endpoint + "/health")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var h struct {
		Health string `json:"health"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return fmt.Errorf("/health: %w", err)
	}
	if h.Health != "true" {
		return fmt.Errorf("/health says %q", h.Health)
	}
	return nil
}

// stop stops etcd: SIGTERM, SIGKILL after etcdStopGrace.
func (e *etcdServer) stop() {
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(etcdStopGrace)
	defer t.Stop()
	select {
	case <-e.done:
	case <-t.C:
		_ = e.cmd.Process.Kill()
		<-e.done
	}
	e.logf("etcd: stopped")
}

// scrape reads etcd's /metrics.
func (e *etcdServer) scrape() (map[string]float64, error) {
	resp, err := e.httpc.Get("http://" + e.endpoint + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("etcd /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("etcd /metrics: %s", resp.Status)
	}
	return chaos.ParseMetrics(resp.Body)
}

// gc makes etcd collect garbage now (pprof heap with gc=1) and copies
// the heap profile to profile (nil: thrown away).
func (e *etcdServer) gc(profile io.Writer) error {
	resp, err := e.httpc.Get("http://" + e.endpoint + "/debug/pprof/heap?gc=1")
	if err != nil {
		return fmt.Errorf("etcd gc: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("etcd gc: %s", resp.Status)
	}
	if profile == nil {
		profile = io.Discard
	}
	if _, err := io.Copy(profile, resp.Body); err != nil {
		return fmt.Errorf("etcd gc: read the heap profile: %w", err)
	}
	return nil
}

// memNodes is etcd as a memory-read node.
func (e *etcdServer) memNodes() []memNode {
	return []memNode{{id: "etcd", role: etcdRole, scrape: e.scrape, gc: e.gc}}
}

// client opens a client of its own connection, returning once connected.
func (e *etcdServer) client(ctx context.Context) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{e.endpoint},
		DialTimeout: connectTimeout,
		// Block until connected, so an idle client holds a connection.
		DialOptions: []grpc.DialOption{grpc.WithBlock()},
		Logger:      zap.NewNop(),
		Context:     ctx,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	return cli, nil
}

// clients opens n clients, a few dozen at a time.
func (e *etcdServer) clients(ctx context.Context, n int) ([]*clientv3.Client, error) {
	out := make([]*clientv3.Client, n)
	var g errgroup.Group // not WithContext: its context ends with Wait, and a client's lives on
	g.SetLimit(32)
	for k := range n {
		g.Go(func() (err error) {
			out[k], err = e.client(ctx)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		closeEtcd(out)
		return nil, err
	}
	return out, nil
}

// closeEtcd closes every client (nil ones skipped).
func closeEtcd(cs []*clientv3.Client) {
	for _, c := range cs {
		if c != nil {
			_ = c.Close()
		}
	}
}

// leasedClient is a client with one lease, kept alive, that its keys
// are put with: etcd's counterpart of a Strata connection whose
// publishers go when it does.
type leasedClient struct {
	cli   *clientv3.Client
	lease clientv3.LeaseID
	stop  context.CancelFunc
	wg    sync.WaitGroup
}

// leasedClients opens n clients, each with a lease of etcdLeaseTTL kept
// alive.
func (e *etcdServer) leasedClients(ctx context.Context, n int) ([]*leasedClient, error) {
	clis, err := e.clients(ctx, n)
	if err != nil {
		return nil, err
	}
	out := make([]*leasedClient, n)
	for k, cli := range clis {
		l := &leasedClient{cli: cli}
		out[k] = l
		g, err := cli.Grant(ctx, etcdLeaseTTL)
		if err != nil {
			closeLeased(out)
			return nil, fmt.Errorf("etcd lease: %w", err)
		}
		l.lease = g.ID
		kctx, stop := context.WithCancel(context.Background())
		l.stop = stop
		ch, err := cli.KeepAlive(kctx, g.ID)
		if err != nil {
			closeLeased(out)
			return nil, fmt.Errorf("etcd keepalive: %w", err)
		}
		l.wg.Go(func() {
			for range ch { // the client stops sending when this is not read
			}
		})
	}
	return out, nil
}

// close stops the keepalive and closes the client; the lease expires by
// itself (or with etcd).
func (l *leasedClient) close() {
	if l.stop != nil {
		l.stop()
	}
	_ = l.cli.Close()
	l.wg.Wait()
}

// revokeAndClose revokes the lease (deleting its keys) and closes.
func (l *leasedClient) revokeAndClose(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	_, err := l.cli.Revoke(rctx, l.lease)
	l.close()
	if err != nil {
		return fmt.Errorf("etcd revoke: %w", err)
	}
	return nil
}

// closeLeased closes every client (nil ones skipped); idempotent
// enough for a deferred cleanup after revokeAll.
func closeLeased(ls []*leasedClient) {
	for _, l := range ls {
		if l != nil {
			l.close()
		}
	}
}

// revokeAll revokes every lease and closes every client, in parallel.
func revokeAll(ctx context.Context, ls []*leasedClient) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, l := range ls {
		g.Go(func() error { return l.revokeAndClose(gctx) })
	}
	return g.Wait()
}

// etcdMain runs etcd's phases on a fresh etcd: idle connections, the
// storm (with its probe and footprint), the restart storm, the fan-out.
func (b *bench) etcdMain(ctx context.Context, pair int) *SystemResult {
	res := &SystemResult{System: "etcd"}
	e, err := startEtcd(ctx, b.path(fmt.Sprintf("etcd-pair%d", pair+1)), b.logf)
	if err != nil {
		res.fail("start", err)
		return res
	}
	defer e.stop()
	o, t := b.opts, b.opts.PhaseTimeout
	b.phase(ctx, res, phaseIdle, t, func(ctx context.Context) (err error) {
		res.Idle, err = e.idle(ctx, o.IdleConns)
		return err
	})
	b.phase(ctx, res, phaseStorm, t, func(ctx context.Context) error { return e.stormAndFootprint(ctx, o, res) })
	b.phase(ctx, res, phaseRestart, t, func(ctx context.Context) (err error) {
		res.Restart, err = e.restart(ctx, o.RestartPublishers, o.ValueBytes)
		return err
	})
	b.phase(ctx, res, phaseFanout, t, func(ctx context.Context) (err error) {
		res.Fanout, err = e.fanout(ctx, o.Fanout, o.FanoutRounds)
		return err
	})
	return res
}

// idle opens conns clients and reads etcd's heap plus stacks per
// connection.
func (e *etcdServer) idle(ctx context.Context, conns int) (*IdleResult, error) {
	nodes := e.memNodes()
	before, err := settledMemory(ctx, nodes, "")
	if err != nil {
		return nil, err
	}
	clients, err := e.clients(ctx, conns)
	if err != nil {
		return nil, err
	}
	defer closeEtcd(clients)
	after, err := settledMemory(ctx, nodes, filepath.Join(e.dir, "heap", phaseIdle))
	if err != nil {
		return nil, err
	}
	return newIdleResult(conns, memoryTable(nodes, before, after), etcdRole), nil
}

// stormAndFootprint runs etcd's storm: --clients clients, each with its
// lease, put the --publishers keys, while the probe runs; then reads the
// footprint and revokes the leases.
func (e *etcdServer) stormAndFootprint(ctx context.Context, o options, res *SystemResult) error {
	clients, err := e.leasedClients(ctx, o.Clients)
	if err != nil {
		return err
	}
	defer closeLeased(clients)
	pr, err := e.startProbe(ctx)
	if err != nil {
		return err
	}
	defer pr.stop(ctx)
	nodes := e.memNodes()
	before, err := settledMemory(ctx, nodes, "")
	if err != nil {
		return err
	}
	spec := stormSpec{label: "etcd storm", publishers: o.Publishers, conns: len(clients), probe: pr.p, logf: e.logf,
		register: func(ctx context.Context, conn, i int) (int, error) {
			l := clients[conn]
			key := fmt.Sprintf("/services/%s/c%d-%d", serviceOf(i, o.Services), conn, i)
			pctx, cancel := context.WithTimeout(ctx, requestTimeout)
			defer cancel()
			_, err := l.cli.Put(pctx, key, string(valueOf(1, i, o.ValueBytes)), clientv3.WithLease(l.lease))
			return 0, err
		}}
	out, err := runStorm(ctx, spec)
	pr.stop(ctx)
	if err != nil {
		return err
	}
	res.Storm = newStormResult(o, out, pr.p.latency(), 0)
	// A put is committed (and applied) when it is acked: nothing to wait for.
	after, err := settledMemory(ctx, nodes, filepath.Join(e.dir, "heap", phaseStorm))
	if err != nil {
		return err
	}
	res.Footprint = newFootprint(o.Publishers, 1, "a single node", memoryTable(nodes, before, after))
	return revokeAll(ctx, clients)
}

// startProbe starts the probe: a writer and a watcher, each its own
// client, the first value seen before it returns.
func (e *etcdServer) startProbe(ctx context.Context) (*probeRun, error) {
	clis, err := e.clients(ctx, 2)
	if err != nil {
		return nil, err
	}
	pubC, subC := clis[0], clis[1]
	wctx, wcancel := context.WithCancel(ctx)
	closers := []func(){wcancel, func() { closeEtcd(clis) }}
	fail := func(err error) (*probeRun, error) {
		for _, c := range closers {
			c()
		}
		return nil, fmt.Errorf("etcd probe: %w", err)
	}
	wc := subC.Watch(wctx, etcdProbeKey, clientv3.WithCreatedNotify())
	if err := awaitCreated(wc); err != nil {
		return fail(err)
	}
	p := newProbe()
	first := p.sent(time.Now())
	if _, err := pubC.Put(ctx, etcdProbeKey, string(probeValue(first))); err != nil {
		return fail(err)
	}
	if err := awaitValue(wc, probeValue(first)); err != nil {
		return fail(fmt.Errorf("first value: %w", err))
	}
	p.arrived(first, time.Now())
	recv := func(ctx context.Context) {
		for {
			select {
			case <-ctx.Done():
				return
			case wr, ok := <-wc:
				if !ok {
					return
				}
				at := time.Now()
				for _, ev := range wr.Events {
					if seq, ok := probeSeq(ev.Kv.Value); ok && ev.Type == clientv3.EventTypePut {
						p.arrived(seq, at)
					}
				}
			}
		}
	}
	send := func(ctx context.Context, seq uint64) error {
		_, err := pubC.Put(ctx, etcdProbeKey, string(probeValue(seq)))
		return err
	}
	return startProbe(ctx, p, send, recv, closers...), nil
}

// awaitCreated waits for a watch's creation notice (so no later event
// can be missed).
func awaitCreated(wc clientv3.WatchChan) error {
	t := time.NewTimer(connectTimeout)
	defer t.Stop()
	select {
	case wr, ok := <-wc:
		switch {
		case !ok:
			return errors.New("watch closed before it was created")
		case wr.Err() != nil:
			return fmt.Errorf("watch: %w", wr.Err())
		case !wr.Created:
			return errors.New("watch: first response is not the creation notice")
		}
		return nil
	case <-t.C:
		return fmt.Errorf("watch not created within %v", connectTimeout)
	}
}

// awaitValue reads wc until a put of v (at most connectTimeout).
func awaitValue(wc clientv3.WatchChan, v []byte) error {
	t := time.NewTimer(connectTimeout)
	defer t.Stop()
	for {
		select {
		case wr, ok := <-wc:
			if !ok {
				return errors.New("watch closed")
			}
			if err := wr.Err(); err != nil {
				return fmt.Errorf("watch: %w", err)
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypePut && string(ev.Kv.Value) == string(v) {
					return nil
				}
			}
		case <-t.C:
			return fmt.Errorf("no put of %q within %v", v, connectTimeout)
		}
	}
}

// restart puts n keys of one service from 100 leased clients, then
// revokes those leases and at the same moment opens 100 new leased
// clients that put the n keys again (a new generation), and times until
// a watcher's list (Get + Watch of the prefix) has all n new values.
func (e *etcdServer) restart(ctx context.Context, n, valueBytes int) (*RestartResult, error) {
	conns := min(spreadConns, n)
	wcli, err := e.client(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = wcli.Close() }()
	list, err := watchList(ctx, wcli, etcdRestartKey)
	if err != nil {
		return nil, err
	}
	defer list.stop()
	old, err := e.leasedClients(ctx, conns)
	if err != nil {
		return nil, err
	}
	defer closeLeased(old)
	if err := putShares(ctx, old, n, 1, valueBytes); err != nil {
		return nil, fmt.Errorf("first generation: %w", err)
	}
	if _, err := list.waitFor(ctx, time.Minute, n, 1); err != nil {
		return nil, fmt.Errorf("first generation never complete at the watcher: %w", err)
	}
	start := time.Now()
	seen := make(chan error, 1)
	var seenAt time.Time
	go func() {
		var err error
		seenAt, err = list.waitFor(ctx, 5*time.Minute, n, 2)
		seen <- err
	}()
	var closed time.Duration
	var revokeErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		revokeErr = revokeAll(ctx, old)
		closed = time.Since(start)
	})
	renewed, err := e.leasedClients(ctx, conns)
	if err != nil {
		wg.Wait()
		return nil, err
	}
	defer closeLeased(renewed)
	err = putShares(ctx, renewed, n, 2, valueBytes)
	acked := time.Since(start)
	wg.Wait()
	if err = errors.Join(err, revokeErr); err != nil {
		return nil, fmt.Errorf("second generation: %w", err)
	}
	if err := <-seen; err != nil {
		return nil, fmt.Errorf("second generation never complete at the watcher: %w", err)
	}
	return &RestartResult{Publishers: n, Clients: conns, CloseMs: ms(closed), AckedMs: ms(acked), ConvergeMs: ms(seenAt.Sub(start))}, nil
}

// putShares puts instances 0..n-1 of the restart service, generation
// gen, spread over clients, each client one after another.
func putShares(ctx context.Context, clients []*leasedClient, n, gen, valueBytes int) error {
	g, gctx := errgroup.WithContext(ctx)
	for k, l := range clients {
		g.Go(func() error {
			for _, i := range share(k, len(clients), n) {
				pctx, cancel := context.WithTimeout(gctx, requestTimeout)
				_, err := l.cli.Put(pctx, fmt.Sprintf("%si%d", etcdRestartKey, i), string(valueOf(gen, i, valueBytes)), clientv3.WithLease(l.lease))
				cancel()
				if err != nil {
					return fmt.Errorf("put %d: %w", i, err)
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// etcdList is a prefix's keys and values as a watcher builds them: a Get,
// then a Watch from the revision after it.
type etcdList struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu sync.Mutex
	kv map[string][]byte
	// at is when the last change arrived; changed is closed (and
	// replaced) on every change.
	at      time.Time
	changed chan struct{}
	err     error
}

// watchList starts following prefix.
func watchList(ctx context.Context, cli *clientv3.Client, prefix string) (*etcdList, error) {
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd get %s: %w", prefix, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	l := &etcdList{cancel: cancel, kv: map[string][]byte{}, changed: make(chan struct{}), at: time.Now()}
	for _, kv := range resp.Kvs {
		l.kv[string(kv.Key)] = kv.Value
	}
	wc := cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	l.wg.Go(func() {
		for wr := range wc {
			l.apply(wr)
		}
	})
	return l, nil
}

// apply applies one watch response.
func (l *etcdList) apply(wr clientv3.WatchResponse) {
	at := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := wr.Err(); err != nil {
		l.err = err
	}
	for _, ev := range wr.Events {
		switch ev.Type {
		case clientv3.EventTypePut:
			l.kv[string(ev.Kv.Key)] = ev.Kv.Value
		case clientv3.EventTypeDelete:
			delete(l.kv, string(ev.Kv.Key))
		}
	}
	l.at = at
	close(l.changed)
	l.changed = make(chan struct{})
}

// waitFor waits (at most timeout) until the list holds n values of
// generation gen and returns when the change that completed it arrived.
func (l *etcdList) waitFor(ctx context.Context, timeout time.Duration, n, gen int) (time.Time, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		l.mu.Lock()
		c := 0
		for _, v := range l.kv {
			if generationOf(v) == gen {
				c++
			}
		}
		at, ch, err := l.at, l.changed, l.err
		l.mu.Unlock()
		switch {
		case c >= n:
			return at, nil
		case err != nil:
			return time.Time{}, fmt.Errorf("watch: %w", err)
		}
		select {
		case <-ch:
		case <-t.C:
			return time.Time{}, fmt.Errorf("%d of %d values of generation %d after %v", c, n, gen, timeout)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// stop ends the watch.
func (l *etcdList) stop() {
	l.cancel()
	l.wg.Wait()
}

// fanout watches one key subs times over 100 clients and times rounds
// puts to every watch.
func (e *etcdServer) fanout(ctx context.Context, subs, rounds int) (*FanoutResult, error) {
	conns := min(spreadConns, subs)
	pubC, err := e.client(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = pubC.Close() }()
	clients, err := e.clients(ctx, conns)
	if err != nil {
		return nil, err
	}
	defer closeEtcd(clients)
	f := newFanout(subs)
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	g, _ := errgroup.WithContext(ctx)
	for k, cli := range clients {
		g.Go(func() error {
			for _, w := range share(k, conns, subs) {
				wc := cli.Watch(wctx, etcdFanoutKey, clientv3.WithCreatedNotify())
				if err := awaitCreated(wc); err != nil {
					return fmt.Errorf("watch %d: %w", w, err)
				}
				wg.Go(func() {
					for wr := range wc {
						at := time.Now()
						for _, ev := range wr.Events {
							if ev.Type == clientv3.EventTypePut {
								f.saw(w, string(ev.Kv.Value), at)
							}
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
	send := func(ctx context.Context, v string) error {
		pctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		_, err := pubC.Put(pctx, etcdFanoutKey, v)
		return err
	}
	lat, err := f.run(ctx, rounds, 10*time.Second, send, e.logf, "etcd fanout")
	if err != nil {
		return nil, err
	}
	return &FanoutResult{Subscribers: subs, Conns: conns, Rounds: rounds, Latency: lat}, nil
}

// etcdVersion is `etcd --version`'s first line and its Go version, or
// why there is none.
func etcdVersion() string {
	out, err := exec.Command("etcd", "--version").Output()
	if err != nil {
		return fmt.Sprintf("unknown (%v)", err)
	}
	var parts []string
	for line := range strings.SplitSeq(string(out), "\n") {
		if strings.HasPrefix(line, "etcd Version") || strings.HasPrefix(line, "Go Version") {
			parts = append(parts, strings.TrimSpace(line))
		}
	}
	return strings.Join(parts, ", ")
}
