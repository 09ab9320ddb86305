package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"

	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

// Option configures a Client (see New).
type Option func(*options)

type options struct {
	sessions    []string
	meta        []string
	zone        string
	clientID    string
	token       string
	tls         *tls.Config
	creds       *Credentials
	cacheDir    string
	logger      *slog.Logger
	dialTimeout time.Duration
	backoffMin  time.Duration
	backoffMax  time.Duration
	metaRefresh time.Duration
	sdk         string
	// heartbeat is the longest interval between heartbeats (0: the
	// session's); missedBeats how many of them may pass with nothing
	// received before the stream is declared dead.
	heartbeat   time.Duration
	missedBeats int
	// keepaliveTime and keepaliveTimeout are gRPC's transport keepalive.
	keepaliveTime    time.Duration
	keepaliveTimeout time.Duration
	// dialOpts go after the client's own (WithDialOptions).
	dialOpts []grpc.DialOption
}

func defaultOptions() options {
	return options{
		dialTimeout: 5 * time.Second,
		backoffMin:  100 * time.Millisecond,
		backoffMax:  5 * time.Second,
		metaRefresh: 30 * time.Second,
		sdk:         "strata-go/1",
		missedBeats: DefaultMissedHeartbeats,

		keepaliveTime:    30 * time.Second,
		keepaliveTimeout: 10 * time.Second,
	}
}

// Liveness bounds (see WithHeartbeat, WithMissedHeartbeats, WithKeepalive).
const (
	// DefaultMissedHeartbeats is how many heartbeat intervals a stream may
	// stay silent before the client declares it dead.
	DefaultMissedHeartbeats = 3
	// MinHeartbeat is the shortest heartbeat interval WithHeartbeat takes.
	MinHeartbeat = 10 * time.Millisecond
	// MinKeepaliveTime is the shortest keepalive interval WithKeepalive
	// takes: grpc-go raises anything shorter to it, and it is above the
	// 5 s under which sessions (and meta) count a ping as abuse and close
	// the connection ("too_many_pings").
	MinKeepaliveTime = 10 * time.Second
)

// WithSessions gives the session nodes to connect to (host:port, the
// sessions' client port, 9603 by default). The client starts at a random
// one and moves to the next on failure. Either this or WithMeta is needed;
// with both, meta's list is used and these are the fallback.
func WithSessions(addrs ...string) Option {
	return func(o *options) { o.sessions = append(o.sessions, addrs...) }
}

// WithMeta gives meta nodes (host:port, 9615 by default) to discover the
// live sessions from: the client asks for them on every (re)connect, and
// prefers lightly loaded sessions in its own zone.
func WithMeta(addrs ...string) Option { return func(o *options) { o.meta = append(o.meta, addrs...) } }

// WithZone sets the zone the client runs in: it is stamped on everything
// it publishes and selects publishers for subscriptions with ScopeZone.
func WithZone(zone string) Option { return func(o *options) { o.zone = zone } }

// WithClientID sets the client's identity, stable across reconnects (the
// default is random per Client). Two live clients must not share one: the
// session keeps only the newer connection.
func WithClientID(id string) Option { return func(o *options) { o.clientID = id } }

// WithToken authenticates the client with a bearer token from the
// cluster's tokens file (the sessions' and meta's --tokens-file), sent as
// "authorization: Bearer <token>" with every call. It needs TLS, so a
// token never crosses the network in clear: WithCredentials, whose
// Credentials then need only the CA (CredentialsDir with an empty name),
// or WithTLS. The alternative to a token is a client certificate
// (Credentials.CertFile and KeyFile).
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithTLS makes every connection (sessions and meta) use TLS with cfg, a
// config of one's own. A stock config checks the server's host name:
// node certificates carry the host names and IPs they were issued for
// (registryctl certs init's and enrollment's --hosts, 127.0.0.1 and
// localhost by default), so it passes, but that says nothing about which
// node answered: a data node, or any other certificate the CA signed for
// that host, passes too. Strata's certificates name the node
// (spiffe://<cluster>/session/<id>); WithCredentials checks that name, and
// is what a client of a Strata cluster should use.
func WithTLS(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// Credentials are the files a client of a cluster with TLS (the default)
// uses: the cluster's CA, and the client's certificate and key unless it
// proves itself with a token (WithToken).
type Credentials struct {
	// Cluster is the cluster name the certificates carry (registryctl
	// certs init --cluster; "strata" when empty).
	Cluster string
	// CAFile holds the CA that signs the cluster's certificates (PEM).
	CAFile string
	// CertFile and KeyFile are the client's certificate and key (PEM);
	// both empty with a token.
	CertFile, KeyFile string
}

// CredentialsDir returns the credentials of the client identity name in
// dir, a directory `registryctl certs init` wrote (make run's run/certs has
// the client "dev"), for the cluster "strata". An empty name leaves the
// certificate out, for a client with a token.
func CredentialsDir(dir, name string) Credentials {
	d := tlsconf.Dir(dir)
	c := Credentials{CAFile: d.CA()}
	if name != "" {
		c.CertFile, c.KeyFile = d.Cert(identity.RoleClient, name), d.Key(identity.RoleClient, name)
	}
	return c
}

// WithCredentials makes every connection use TLS with c: the client
// presents its certificate, if c has one, and talks only to servers whose
// certificates chain to c's CA and name a session or meta node of
// c.Cluster. New reads the files and fails if they do not load.
func WithCredentials(c Credentials) Option { return func(o *options) { o.creds = &c } }

// WithCacheDir keeps the last snapshot of each subscription in dir, so a
// client started while no session is reachable serves it (Snapshot.Cached
// is true) until live data arrives.
func WithCacheDir(dir string) Option { return func(o *options) { o.cacheDir = dir } }

// WithLogger sets the logger for connection events (default: none).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithDialTimeout bounds one connection attempt to one session (default 5s).
func WithDialTimeout(d time.Duration) Option { return func(o *options) { o.dialTimeout = d } }

// WithBackoff sets the reconnect backoff: the wait after consecutive failed
// attempts doubles from min up to max, and each wait is drawn at random
// below it, so a restarted cluster is not hit by every client at once
// (defaults 100ms and 5s).
func WithBackoff(min, max time.Duration) Option {
	return func(o *options) { o.backoffMin, o.backoffMax = min, max }
}

// WithHeartbeat sets the longest interval between the client's heartbeats
// on its session stream. The client heartbeats at the shorter of every and
// the interval the session asks for in its welcome (its
// --client-heartbeat, 10 s by default), so the session never times it
// out; 0 (the default) keeps the session's. Every heartbeat is answered,
// so a stream that hears nothing at all (no answer, ack or push) for
// WithMissedHeartbeats intervals is declared dead and the client moves to
// another session: the interval times the count is how long a frozen
// session can hold the client (3 x 10 s by default). Shorter intervals
// detect sooner and cost the session one small frame per interval per
// client. At least MinHeartbeat.
func WithHeartbeat(every time.Duration) Option {
	return func(o *options) { o.heartbeat = every }
}

// WithMissedHeartbeats sets how many heartbeat intervals the session
// stream may stay silent before the client declares it dead and moves to
// another session, keeping its registrations and serving the last
// snapshots meanwhile (default DefaultMissedHeartbeats, at least 2: with
// one, a single late answer would move the client). Intervals in which the
// client could not send its own heartbeat (it was stalled itself: CPU
// starvation, a paused VM) do not count against the session.
func WithMissedHeartbeats(n int) Option {
	return func(o *options) { o.missedBeats = n }
}

// WithKeepalive sets gRPC's transport keepalive on every connection: after
// interval without reading anything the client pings the server, and
// closes the connection if no answer comes within timeout (defaults 30 s and
// 10 s, the sessions' own). It is the transport's check under the
// heartbeat deadline (WithMissedHeartbeats), which catches a frozen
// session sooner at the default timings. interval must be at least
// MinKeepaliveTime, timeout positive.
func WithKeepalive(interval, timeout time.Duration) Option {
	return func(o *options) { o.keepaliveTime, o.keepaliveTimeout = interval, timeout }
}

// WithDialOptions adds gRPC dial options to every connection the client
// makes, to sessions and to meta, after the client's own: interceptors
// (grpc.WithChainUnaryInterceptor, grpc.WithChainStreamInterceptor, which
// see the session stream and meta's ListSessions), stats handlers
// (grpc.WithStatsHandler, e.g. OpenTelemetry's otelgrpc), a dialer of
// one's own. Coming last, an option that sets what the client sets itself
// (transport credentials, per-RPC credentials, keepalive, flow-control
// windows, default call options) overrides the client's: use
// WithCredentials or WithTLS, WithToken and WithKeepalive for those.
// Repeated calls add up.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOpts = append(o.dialOpts, opts...) }
}

func (o *options) validate() error {
	if len(o.sessions) == 0 && len(o.meta) == 0 {
		return errors.New("strata: no sessions or meta nodes given (use WithSessions or WithMeta)")
	}
	for _, a := range append(append([]string(nil), o.sessions...), o.meta...) {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("strata: address %q: %w", a, err)
		}
	}
	if o.tls != nil && o.creds != nil {
		return errors.New("strata: WithTLS and WithCredentials together: choose one")
	}
	if o.token != "" && o.tls == nil && o.creds == nil {
		return errors.New("strata: WithToken needs TLS (WithCredentials or WithTLS): a token must not cross the network in clear")
	}
	if o.dialTimeout <= 0 || o.backoffMin <= 0 || o.backoffMax < o.backoffMin {
		return fmt.Errorf("strata: timeouts must be positive and backoff min (%v) at most max (%v)", o.backoffMin, o.backoffMax)
	}
	if o.heartbeat != 0 && o.heartbeat < MinHeartbeat {
		return fmt.Errorf("strata: WithHeartbeat(%v): the interval must be 0 (the session's) or at least %v", o.heartbeat, MinHeartbeat)
	}
	if o.missedBeats < 2 {
		return fmt.Errorf("strata: WithMissedHeartbeats(%d): at least 2 (with fewer, one late answer would move the client)", o.missedBeats)
	}
	if o.keepaliveTime < MinKeepaliveTime || o.keepaliveTimeout <= 0 {
		return fmt.Errorf("strata: WithKeepalive(%v, %v): the interval must be at least %v (sessions close connections that ping more often than every 5s) and the timeout positive",
			o.keepaliveTime, o.keepaliveTimeout, MinKeepaliveTime)
	}
	return nil
}

// Scope selects which publishers a subscription receives.
type Scope int

const (
	// ScopeGlobal: every publisher (the default).
	ScopeGlobal Scope = iota
	// ScopeZone: publishers in the client's zone (WithZone).
	ScopeZone
	// ScopeDatacenter: publishers in the client's datacenter.
	ScopeDatacenter
)

// RegisterOption configures one Publish or Subscribe.
type RegisterOption func(*regOptions)

type regOptions struct {
	group      string
	instanceID string
	scope      Scope
	ack        Ack
}

// Ack is what the return of Publish (and Update) promises.
type Ack int

const (
	// AckHeld (the default): a session holds the publication. It is in
	// that session's store and queued for its slot leader; the session
	// keeps sending it until it lands, and, should that session fail, the
	// client replays it to the next. Subscribers see it once it lands,
	// usually within milliseconds.
	AckHeld Ack = iota
	// AckApplied: the slot leader on the data tier has stored this version
	// (or a newer state of the publication), so every read and push from
	// then on includes it. Costs the session's round trip to the data
	// node; a data leader that is down holds the return until the slot has
	// a new leader (or ctx ends).
	AckApplied
)

// WithAck sets what Publish and the publication's Updates wait for
// (default AckHeld). Publish ignores it for Subscribe.
func WithAck(a Ack) RegisterOption { return func(o *regOptions) { o.ack = a } }

// WithGroup sets the group of a publication or subscription (default
// "DEFAULT_GROUP"). A subscriber sees only publishers of the same data ID,
// instance ID and group.
func WithGroup(g string) RegisterOption { return func(o *regOptions) { o.group = g } }

// WithInstanceID sets the instance ID part of the key (default
// "DEFAULT_INSTANCE_ID"), for registries partitioned by tenant or cell.
func WithInstanceID(id string) RegisterOption { return func(o *regOptions) { o.instanceID = id } }

// WithScope sets a subscription's scope (default ScopeGlobal). Publish
// ignores it.
func WithScope(s Scope) RegisterOption { return func(o *regOptions) { o.scope = s } }

// tlsConfig returns the TLS config c describes (see WithCredentials).
func (c Credentials) tlsConfig() (*tls.Config, error) {
	cluster := c.Cluster
	if cluster == "" {
		cluster = identity.DefaultCluster
	}
	creds, err := tlsconf.Load(tlsconf.Config{CertFile: c.CertFile, KeyFile: c.KeyFile, CAFile: c.CAFile}, cluster)
	if err != nil {
		return nil, fmt.Errorf("strata: credentials: %w", err)
	}
	if creds == nil {
		return nil, errors.New("strata: credentials: no CA file given")
	}
	return creds.Client(identity.Peer{Role: identity.RoleSession}, identity.Peer{Role: identity.RoleMeta}), nil
}
