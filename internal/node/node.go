// Package node is the runtime every Strata node shares, whatever its role:
// the gossip agent, the gRPC and admin HTTP servers on pre-bound
// listeners, the connection pool to other nodes, and the order in which
// they start and stop. meta, data and session plug into it as a Role:
// their services, routes and loops.
//
// Run starts, in order:
//
//  1. Role.Start: what gossip and the servers need first (meta opens Raft);
//     it returns the meta this node announces in the pool;
//  2. gossip (it binds its port; JoinLoop reaches the seeds);
//  3. the gRPC and HTTP servers, with the role's services and routes;
//  4. Role.Run's loops;
//
// and once its context ends (or Kill), stops in reverse:
//
//  0. a graceful stop of a Drainer with LeaveOnShutdown leaves the pool
//     first and lets the role hand its work over (Drain, bounded) while
//     everything still runs;
//  1. Role.Stop(graceful): end the role's long-lived streams, hand over
//     what should be handed over (meta's Raft leadership);
//  2. the gRPC and HTTP servers (gracefully, then forcibly after a bound);
//  3. gossip: a graceful stop leaves the pool if LeaveOnShutdown is set, a
//     Kill (or no LeaveOnShutdown) just stops, as a crash would;
//  4. waits for every goroutine, then Role.Close releases what Start opened.
//
// Files: config.go (Config, Deps), flags.go (the flags every role shares),
// node.go (the runtime), main.go (signals, for the commands).
package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/admin"
	"github.com/strata-registry/strata/internal/clock"
	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/metaclient"
	"github.com/strata-registry/strata/internal/obs"
	"github.com/strata-registry/strata/internal/rpc"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

// Role is what a meta, data or session server plugs into its Node. The
// Node calls each method once, in the order below, from Run's goroutine.
type Role interface {
	// Start prepares what gossip and the servers need before they start
	// and returns the meta to announce in the pool (role and addresses;
	// the Node fills in nothing). An error aborts Run; Close is not called,
	// so Start cleans up after itself.
	Start() (cluster.Meta, error)
	// Serve registers the role's gRPC services on gs and its admin routes
	// on mux, before either serves.
	Serve(gs *grpc.Server, mux *admin.Mux)
	// Run starts the role's loops in g; each returns when ctx ends. Run
	// itself must not block.
	Run(ctx context.Context, g *errgroup.Group)
	// Stop is called once ctx has ended, before the servers stop: end the
	// streams the role holds open (watchers, client streams) so the
	// graceful stop does not wait for them. graceful is false after Kill.
	Stop(graceful bool)
	// Close is called after every goroutine has returned, also when Run
	// fails after Start: release what Start opened.
	Close() error
}

// Spec is what a role tells its Node beyond the Config.
type Spec struct {
	// Role is announced in the pool and selects the role's validation.
	Role cluster.Role
	// PoolSize bounds the client connections kept to other nodes; size it
	// well above the peers the role talks to.
	PoolSize int
	// ServerOptions are added to the gRPC server's (after the shared ones).
	ServerOptions []grpc.ServerOption
	// Ready reports readiness for /readyz.
	Ready admin.ReadyFunc
	// Policy says which roles may call each of the role's gRPC methods.
	Policy Policy
	// Tokens is whether the gRPC port serves callers that prove themselves
	// with a bearer token instead of a certificate (clients of sessions,
	// and of meta for finding sessions). Where it is false, TLS demands a
	// certificate in the handshake: an unauthenticated peer never gets to
	// send a byte of gRPC.
	Tokens bool
}

// stopWait bounds the graceful stop of each server: streams end with
// their server's context, but a slow peer must not hold shutdown up.
const stopWait = 2 * time.Second

// Node is one running Strata process of any role.
type Node struct {
	cfg    Config
	spec   Spec
	deps   Deps
	logger *slog.Logger
	clock  clock.Clock
	reg    *prometheus.Registry
	pool   *rpc.Pool
	meta   *metaclient.Client // nil on meta nodes
	// creds are the node's TLS credentials (nil without TLS); tokens the
	// client and operator identities of the tokens file.
	creds   *tlsconf.Creds
	tokens  *access.Store
	metrics *metrics

	grpcAddr, httpAddr string

	ready  chan struct{}
	killed chan struct{}
	kill   sync.Once

	// Set in Run before ready closes, read-only after.
	agent *cluster.Agent
}

// New checks cfg (for spec.Role) and deps and prepares a node. It starts
// nothing and binds nothing; Run does. On error the caller still owns the
// listeners.
func New(cfg Config, spec Spec, deps Deps) (*Node, error) {
	if err := cfg.Validate(spec.Role); err != nil {
		return nil, err
	}
	if err := deps.Validate(); err != nil {
		return nil, err
	}
	if spec.PoolSize < 1 {
		return nil, fmt.Errorf("pool size must be positive, got %d", spec.PoolSize)
	}
	if spec.Ready == nil {
		return nil, fmt.Errorf("a readiness function is required")
	}
	reg := deps.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	creds, err := tlsconf.LoadNode(cfg.TLS, identity.ID{Cluster: cfg.Cluster, Role: identity.Role(spec.Role), Name: cfg.NodeID})
	if err != nil {
		return nil, err
	}
	tokens, err := access.LoadStore(cfg.Cluster, cfg.TokensFile)
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:      cfg,
		spec:     spec,
		deps:     deps,
		logger:   obs.Or(deps.Logger),
		clock:    clock.Or(deps.Clock),
		reg:      reg,
		pool:     rpc.NewPool(creds, spec.PoolSize),
		creds:    creds,
		tokens:   tokens,
		metrics:  newMetrics(),
		grpcAddr: advertised(cfg.GRPCAdvertise, deps.GRPCListener),
		httpAddr: advertised(cfg.HTTPAdvertise, deps.HTTPListener),
		ready:    make(chan struct{}),
		killed:   make(chan struct{}),
	}
	if spec.Role != cluster.RoleMeta {
		mc, err := metaclient.New(cfg.MetaAddrs, n.pool, cfg.CallTimeout, n.logger)
		if err != nil {
			return nil, err
		}
		n.meta = mc
	}
	return n, nil
}

func advertised(addr string, ln net.Listener) string {
	if addr != "" {
		return addr
	}
	return ln.Addr().String()
}

// Logger returns the node's logger.
func (n *Node) Logger() *slog.Logger { return n.logger }

// Clock returns the node's clock.
func (n *Node) Clock() clock.Clock { return n.clock }

// Registry returns the node's metrics registry.
func (n *Node) Registry() *prometheus.Registry { return n.reg }

// Pool returns the node's connections to other nodes. Valid from New on;
// closed when Run returns.
func (n *Node) Pool() *rpc.Pool { return n.pool }

// Meta returns the client of the meta tier (nil on meta nodes).
func (n *Node) Meta() *metaclient.Client { return n.meta }

// Agent returns the node's gossip agent; valid once Role.Serve is called
// (after Role.Start), so in the role's services, routes and loops.
func (n *Node) Agent() *cluster.Agent { return n.agent }

// GRPCAddr returns the advertised gRPC address.
func (n *Node) GRPCAddr() string { return n.grpcAddr }

// HTTPAddr returns the advertised admin HTTP address.
func (n *Node) HTTPAddr() string { return n.httpAddr }

// GossipAddr returns the gossip address other nodes join; valid after Ready.
func (n *Node) GossipAddr() string { return n.agent.Addr() }

// Ready is closed once gossip and both servers are up and the role's loops
// have started.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Kill makes Run return as a crash would: no graceful leave from the pool,
// and Role.Stop is told so. Tests use it to simulate a failed node.
func (n *Node) Kill() { n.kill.Do(func() { close(n.killed) }) }

// Run starts the node with its role and blocks until ctx ends (or Kill),
// then stops everything it started and returns (see the package comment for
// the order). It returns early with an error if a part fails to start.
// Call it once.
func (n *Node) Run(ctx context.Context, role Role) (err error) {
	// The loops and servers run until cancel: at once on Kill or when a
	// part fails, and after the drain (n.drain) once the caller's ctx ends.
	outer := ctx
	ctx, cancel := context.WithCancel(context.WithoutCancel(outer))
	defer cancel()
	defer n.pool.Close()
	gm, err := role.Start()
	if err != nil {
		n.deps.Close()
		return err
	}
	defer func() {
		if cerr := role.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	gm.Role = n.spec.Role
	agent, err := n.newAgent(gm)
	if err != nil {
		n.deps.Close()
		return err
	}
	n.agent = agent
	b := agent.DetectionBudget(detectionPool)
	n.logger.Info("gossip failure detection budget", "pool_up_to", detectionPool, "suspected_within", b.Suspect,
		"dead_within_confirmed", b.DeadFast, "dead_within_unconfirmed", b.DeadSlow)
	grpcLn := n.metrics.capped("grpc", n.deps.GRPCListener, n.cfg.Limits.MaxConnections)
	httpLn := n.metrics.capped("http", n.deps.HTTPListener, n.cfg.Limits.MaxHTTPConnections)
	if err := n.reg.Register(n.metrics); err != nil {
		agent.Kill()
		n.deps.Close()
		return fmt.Errorf("%s: register node metrics: %w", n.spec.Role, err)
	}
	defer n.reg.Unregister(n.metrics)
	// The Go runtime's and the process's own figures (go_*, process_*:
	// heap, goroutines, RSS, open files), so a node's memory can be read
	// from its /metrics. A registry that has them already (the caller's)
	// keeps its own.
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := n.reg.Register(c); err == nil {
			defer n.reg.Unregister(c)
		} else if !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			agent.Kill()
			n.deps.Close()
			return fmt.Errorf("%s: register runtime metrics: %w", n.spec.Role, err)
		}
	}
	gs := grpc.NewServer(n.serverOptions()...)
	mux := admin.New(n.cfg.NodeID, n.reg, n.adminAuth, n.spec.Ready)
	role.Serve(gs, mux)
	mux.API("/api/v1/keyring", func(w http.ResponseWriter, r *http.Request) {
		admin.WriteJSON(w, http.StatusOK, agent.Keyring())
	})
	// Admin HTTP is TLS like the rest: operators and scrapers verify the
	// node, an admin certificate (or token) opens /api and /debug.
	hs := n.httpServer(mux)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		select {
		case <-n.killed:
		case <-outer.Done():
			n.drain(role)
		case <-gctx.Done():
		}
		cancel()
		return nil
	})
	g.Go(func() error { return agent.JoinLoop(gctx) })
	g.Go(func() error { return rpc.Serve(gs, grpcLn) })
	g.Go(func() error { return admin.Serve(hs, httpLn) })
	role.Run(gctx, g)
	g.Go(func() error {
		<-gctx.Done()
		n.stop(role, gs, hs)
		return nil
	})
	if n.creds == nil {
		n.logger.Warn("running without TLS (--insecure): nothing is authenticated; anyone who reaches a port may join, read and write")
	}
	close(n.ready)
	// Tests of real processes read the bound addresses from this line.
	attrs := []any{"grpc", n.grpcAddr, "http", n.httpAddr, "gossip", agent.Addr()}
	if gm.Raft != "" {
		attrs = append(attrs, "raft", gm.Raft)
	}
	if gm.Proc != "" {
		attrs = append(attrs, "proc", gm.Proc)
	}
	n.logger.Info(string(n.spec.Role)+" node started", attrs...)
	err = g.Wait()
	n.logger.Info(string(n.spec.Role) + " node stopped")
	return err
}

// httpServer returns an HTTP server for h with the node's limits (header
// and idle timeouts, header size) and, on a node with TLS, its
// certificate; a client certificate is verified when the caller offers
// one.
func (n *Node) httpServer(h http.Handler) *http.Server {
	hs := n.cfg.Limits.httpServer(h)
	if n.creds != nil {
		hs.TLSConfig = n.creds.Server(tls.VerifyClientCertIfGiven, nil)
	}
	return hs
}

// ServeHTTP serves h on ln, a role's own HTTP port beside admin HTTP,
// until ctx ends, as the node serves admin HTTP: TLS with the node's
// certificate whenever it has TLS (a client certificate verified when
// given: HTTPCaller reads it), the Limits' header and idle timeouts, and
// at most maxConns open connections (one more is closed as soon as it is
// accepted, counted in strata_node_connections_refused_total{port}).
// Once ctx ends it stops the server: requests in progress get stopWait,
// then their connections are closed; handlers that wait (long polls)
// should watch ctx too. It returns when the server has stopped; it owns
// ln.
func (n *Node) ServeHTTP(ctx context.Context, port string, ln net.Listener, maxConns int, h http.Handler) error {
	hs := n.httpServer(h)
	hs.BaseContext = func(net.Listener) context.Context { return ctx }
	errc := make(chan error, 1)
	go func() { errc <- admin.Serve(hs, n.metrics.capped(port, ln, maxConns)) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	admin.Shutdown(hs, stopWait)
	return <-errc
}

// detectionPool is the pool size the start log's detection budget is for:
// up to ten members memberlist's suspicion timeout does not grow (log10).
const detectionPool = 10

// newAgent makes the gossip agent announcing gm, encrypted with the key
// file's keys as they read now (nil: plaintext gossip); Reload hands the
// agent newer ones.
func (n *Node) newAgent(gm cluster.Meta) (*cluster.Agent, error) {
	var keys [][]byte
	if n.cfg.GossipKeyFile != "" {
		var err error
		if keys, err = cluster.ReadKeyFile(n.cfg.GossipKeyFile); err != nil {
			return nil, err
		}
	}
	return cluster.New(cluster.Config{
		NodeID: n.cfg.NodeID, BindAddr: n.cfg.GossipBind, BindPort: n.cfg.GossipPort, AdvertiseAddr: n.cfg.GossipAdvertise,
		Join: n.cfg.Join, Profile: n.cfg.GossipProfile, Timing: n.cfg.GossipTiming, RetryJoin: n.cfg.JoinRetry, Meta: gm, Keys: keys,
	}, n.logger.With("component", "gossip"), n.clock)
}

// serverOptions are the gRPC server's: TLS (a certificate demanded in the
// handshake unless the role serves token holders), authentication and the
// role's policy on every call, then the role's own options and those of
// Deps.
func (n *Node) serverOptions() []grpc.ServerOption {
	auth := tls.RequireAndVerifyClientCert
	if n.spec.Tokens {
		auth = tls.VerifyClientCertIfGiven
	}
	opts := rpc.ServerOptions(n.creds, auth, n.cfg.Limits.MaxRecvBytes)
	opts = append(opts, n.cfg.Limits.serverOptions()...)
	opts = append(opts, grpc.ForceServerCodecV2(newLenientCodec()),
		grpc.ChainUnaryInterceptor(n.metrics.unary, n.unaryAuth), grpc.ChainStreamInterceptor(n.metrics.stream, n.streamAuth))
	opts = append(opts, n.spec.ServerOptions...)
	return append(opts, n.deps.ServerOptions...)
}

// Creds returns the node's TLS credentials, nil without TLS.
func (n *Node) Creds() *tlsconf.Creds { return n.creds }

// Secure reports whether the node authenticates its peers (runs with TLS).
func (n *Node) Secure() bool { return n.creds != nil }

// Cluster returns the cluster name the node's identities belong to.
func (n *Node) Cluster() string { return n.cfg.Cluster }

// Reload re-reads what a running node can take anew (SIGHUP): its TLS
// certificate, key and CA, the tokens file and the gossip keys. What fails
// to load is reported and the old stays in force; links already up keep
// theirs. Call it after Ready.
func (n *Node) Reload() error {
	select {
	case <-n.ready:
	default:
		return errors.New("node: not serving yet; nothing reloaded")
	}
	var errs []error
	if n.creds != nil {
		if err := n.creds.Reload(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := n.tokens.Reload(); err != nil {
		errs = append(errs, err)
	}
	if n.cfg.GossipKeyFile != "" {
		keys, err := cluster.ReadKeyFile(n.cfg.GossipKeyFile)
		if err == nil {
			err = n.agent.SetKeys(keys)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		n.logger.Warn("reload failed; the old credentials stay in force", "err", err)
	} else {
		n.logger.Info("reloaded credentials", "tls", n.creds != nil, "token_identities", n.tokens.Len())
	}
	return err
}

// Drainer is a Role that hands its work over before a graceful stop. Run
// calls Drain, when LeaveOnShutdown is set, while the role's loops and
// servers still run; Drain calls leave (which leaves the gossip pool) when
// it is ready to be seen gone (a data node first stops its heartbeats,
// which would register it again), so the cluster moves the work away from
// a node that still answers (a data node's leaderships, whose writes
// would otherwise stall until it is gone). Drain returns once nothing is
// left to hand over, or when ctx ends: the drain bound, or a Kill.
type Drainer interface {
	Drain(ctx context.Context, leave func())
}

// drainWait bounds a Drain.
const drainWait = 3 * time.Second

// drain leaves the pool and lets the role hand over, for a graceful stop.
func (n *Node) drain(role Role) {
	d, ok := role.(Drainer)
	if !ok || !n.cfg.LeaveOnShutdown {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), drainWait)
	defer cancel()
	go func() {
		select {
		case <-n.killed:
			cancel()
		case <-ctx.Done():
		}
	}()
	start := n.clock.Now()
	d.Drain(ctx, n.agent.Leave)
	n.logger.Info("left the pool and drained", "took", n.clock.Now().Sub(start), "bounded_by", drainWait)
}

// stop is the stop order after the context ended: the role's streams, the
// servers, gossip.
func (n *Node) stop(role Role, gs *grpc.Server, hs *http.Server) {
	graceful := true
	select {
	case <-n.killed:
		graceful = false
	default:
	}
	role.Stop(graceful)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); rpc.Stop(gs, stopWait) }()
	go func() { defer wg.Done(); admin.Shutdown(hs, stopWait) }()
	wg.Wait()
	if graceful && n.cfg.LeaveOnShutdown {
		n.agent.Leave()
	} else {
		n.agent.Kill()
	}
}
