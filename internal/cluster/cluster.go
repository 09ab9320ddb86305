// Package cluster wraps hashicorp/memberlist: every Strata node of every role
// joins one gossip pool, which is the cluster's failure detector and the way
// meta nodes find each other. Node meta carries the node's role and
// addresses, so a pool member says what it is and where to reach it.
//
// The view is level-triggered: Members returns the pool as it is now, and
// Changed returns a channel closed at the next change. Consumers reconcile
// against the snapshot instead of replaying events, so merged signals lose
// nothing, and any number of goroutines may wait.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/strata-registry/strata/internal/clock"
	"github.com/strata-registry/strata/internal/obs"
)

// Role is what a pool member does.
type Role string

// Roles.
const (
	RoleMeta    Role = "meta"
	RoleData    Role = "data"
	RoleSession Role = "session"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	return r == RoleMeta || r == RoleData || r == RoleSession
}

// State is a pool member's state as gossip reports it.
type State int

// States. Suspect nodes are reported Alive: memberlist is still probing them,
// and callers apply their own grace period after Dead anyway.
const (
	StateAlive State = iota
	StateDead
	StateLeft
)

func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return "unknown"
}

// Meta is what a node announces about itself in the pool. It must encode to
// at most memberlist.MetaMaxSize (512) bytes.
type Meta struct {
	Role Role   `json:"role"`
	GRPC string `json:"grpc,omitempty"`
	HTTP string `json:"http,omitempty"`
	Zone string `json:"zone,omitempty"`
	// Raft is a meta node's Raft transport address.
	Raft string `json:"raft,omitempty"`
	// Expect is a meta node's --bootstrap-expect; 0 when it started with
	// Raft state on disk or never bootstraps.
	Expect int `json:"expect,omitempty"`
	// Proc identifies the running process of a session node (node id plus
	// a per-start nonce): publishers are owned by a process, so a session
	// that restarted under the same id is a new owner.
	Proc string `json:"proc,omitempty"`
	// Leaving is set just before a graceful leave. memberlist reports a
	// leave and a failure alike to the event delegate, so the intent
	// travels in the meta, as an update, ahead of the leave itself.
	Leaving bool `json:"leaving,omitempty"`
}

// Member is one node of the pool.
type Member struct {
	ID    string
	Addr  string // gossip address, host:port
	Meta  Meta
	State State
	// Since is when this process saw the member enter State.
	Since time.Time
}

// Config configures an Agent.
type Config struct {
	// NodeID is the node's unique name in the pool.
	NodeID string
	// BindAddr and BindPort are where gossip listens (TCP and UDP). Port 0
	// picks a free port; Addr reports it.
	BindAddr string
	BindPort int
	// AdvertiseAddr, when set, is the address other nodes use.
	AdvertiseAddr string
	// Join lists seed addresses (host:port). The agent retries until one
	// answers, so seeds may start in any order.
	Join []string
	// Meta is announced to the pool.
	Meta Meta
	// Profile picks memberlist timings: "lan" (production) or "local"
	// (loopback tests: faster probes and suspicion).
	Profile string
	// RetryJoin is the pause between join attempts.
	RetryJoin time.Duration
}

// leavePropagate is how long Leave lets the "leaving" update spread before
// the leave itself, per profile (Serf's LeavePropagateDelay plays the same
// part). A peer that gets the leave first marks the node dead at that
// incarnation and then ignores the update, so the order matters.
var leavePropagate = map[string]time.Duration{"": time.Second, "lan": time.Second, "local": 150 * time.Millisecond}

// forgetAfter is how long a dead or left node stays in Members.
const forgetAfter = time.Hour

// ErrBadConfig wraps configuration errors.
var ErrBadConfig = errors.New("cluster: bad config")

// Agent is this process's membership in the pool.
type Agent struct {
	cfg    Config
	logger *slog.Logger
	clock  clock.Clock
	ml     *memberlist.Memberlist

	metaMu sync.Mutex
	meta   []byte // encoded Meta, announced through the delegate

	mu sync.Mutex
	// members holds every node seen; dead and left ones for forgetAfter.
	members map[string]Member
	// changed is closed, and replaced, at every change of members.
	changed chan struct{}
	// stopped is set by Leave or Kill; memberlist panics on a second stop.
	stopped bool
	// joined is set once JoinLoop has reached a seed (or had none).
	joined bool
}

// Joined reports whether this node has joined the pool (a node without
// seeds has, at once): until then its view of the pool is only itself.
func (a *Agent) Joined() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.joined
}

func (a *Agent) setJoined() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.joined = true
}

// New validates cfg and creates the memberlist, binding its port and
// starting its gossip goroutines. It does not join anyone: JoinLoop does.
// The caller must end it with Leave or Kill.
func New(cfg Config, logger *slog.Logger, clk clock.Clock) (*Agent, error) {
	if cfg.NodeID == "" {
		return nil, fmt.Errorf("%w: empty node id", ErrBadConfig)
	}
	if !cfg.Meta.Role.Valid() {
		return nil, fmt.Errorf("%w: unknown role %q", ErrBadConfig, cfg.Meta.Role)
	}
	meta, err := json.Marshal(cfg.Meta)
	if err != nil {
		return nil, fmt.Errorf("%w: encode meta: %v", ErrBadConfig, err)
	}
	if len(meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("%w: node meta is %d bytes, memberlist allows %d", ErrBadConfig, len(meta), memberlist.MetaMaxSize)
	}
	if cfg.RetryJoin <= 0 {
		cfg.RetryJoin = time.Second
	}
	a := &Agent{
		cfg:     cfg,
		logger:  obs.Or(logger),
		clock:   clock.Or(clk),
		meta:    meta,
		changed: make(chan struct{}),
		members: make(map[string]Member),
	}
	var mc *memberlist.Config
	switch cfg.Profile {
	case "", "lan":
		mc = memberlist.DefaultLANConfig()
		// A node that restarts under its name on a new address (a
		// rescheduled container) takes the name back once the old
		// incarnation is dead; memberlist's default never lets it.
		mc.DeadNodeReclaimTime = 5 * time.Second
	case "local":
		mc = memberlist.DefaultLocalConfig()
		mc.ProbeInterval = 200 * time.Millisecond
		mc.ProbeTimeout = 100 * time.Millisecond
		mc.SuspicionMult = 2
		mc.GossipInterval = 50 * time.Millisecond
		mc.PushPullInterval = time.Second
		mc.DeadNodeReclaimTime = 200 * time.Millisecond
	default:
		return nil, fmt.Errorf("%w: unknown gossip profile %q (want lan or local)", ErrBadConfig, cfg.Profile)
	}
	mc.Name = cfg.NodeID
	mc.BindAddr = cfg.BindAddr
	mc.BindPort = cfg.BindPort
	mc.AdvertisePort = cfg.BindPort
	if cfg.AdvertiseAddr != "" {
		mc.AdvertiseAddr = cfg.AdvertiseAddr
	}
	mc.Delegate = delegate{a}
	mc.Events = events{a}
	mc.Logger = obs.StdLogger(a.logger.With("lib", "memberlist"), slog.LevelInfo)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("cluster: start gossip on %s:%d: %w", cfg.BindAddr, cfg.BindPort, err)
	}
	a.ml = ml
	return a, nil
}

// Addr returns the gossip address other nodes join, host:port.
func (a *Agent) Addr() string {
	n := a.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// JoinLoop joins the seeds, retrying until one answers, and then keeps the
// pool whole until ctx ends: every RetryJoin it tries to reach a few members
// it believes dead, and the seeds when it sees no one else alive.
// memberlist stops gossiping to the dead after a while, so without this two
// sides of a long partition would see each other dead for good (Serf's
// reconnect does the same). It returns nil when ctx ends.
func (a *Agent) JoinLoop(ctx context.Context) error {
	seeds := slices.DeleteFunc(slices.Clone(a.cfg.Join), func(s string) bool { return s == "" || s == a.Addr() })
	t := a.clock.NewTicker(a.cfg.RetryJoin)
	defer t.Stop()
	joined := len(seeds) == 0
	if joined {
		a.setJoined()
	}
	round := 0
	for {
		if !joined {
			n, err := a.ml.Join(seeds)
			if n > 0 {
				a.logger.Info("joined gossip pool", "seeds", seeds, "contacted", n)
				joined = true
				a.setJoined()
			} else {
				a.logger.Warn("join gossip pool failed, retrying", "seeds", seeds, "err", err, "every", a.cfg.RetryJoin)
			}
		} else if targets := a.reconnectTargets(seeds, round); len(targets) > 0 {
			if n, _ := a.ml.Join(targets); n > 0 {
				a.logger.Info("reconnected to gossip members", "tried", targets, "contacted", n)
			}
			round++
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
	}
}

// reconnectMax bounds the dead members tried per round: each unreachable
// one costs a TCP timeout.
const reconnectMax = 3

// reconnectTargets picks up to reconnectMax dead members, rotating through
// them round by round, plus the seeds when nobody else is alive.
func (a *Agent) reconnectTargets(seeds []string, round int) []string {
	var dead []string
	alive := 0
	for _, m := range a.Members() {
		switch {
		case m.ID == a.cfg.NodeID:
		case m.State == StateAlive:
			alive++
		case m.State == StateDead:
			dead = append(dead, m.Addr)
		}
	}
	var out []string
	for i := range min(len(dead), reconnectMax) {
		out = append(out, dead[(round*reconnectMax+i)%len(dead)])
	}
	if alive == 0 {
		out = append(out, seeds...)
	}
	return out
}

// Leave tells the pool this node is going (others see "left", not "dead")
// and stops gossip.
func (a *Agent) Leave() {
	if !a.stop() {
		return
	}
	m := a.cfg.Meta
	m.Leaving = true
	if b, err := json.Marshal(m); err == nil {
		a.metaMu.Lock()
		a.meta = b
		a.metaMu.Unlock()
		if err := a.ml.UpdateNode(time.Second); err != nil {
			a.logger.Warn("announce leave", "err", err)
		}
		// Network propagation, not a lease: real time, whatever the clock.
		time.Sleep(leavePropagate[a.cfg.Profile])
	}
	if err := a.ml.Leave(2 * time.Second); err != nil {
		a.logger.Warn("leave gossip pool", "err", err)
	}
	if err := a.ml.Shutdown(); err != nil {
		a.logger.Warn("shut down gossip", "err", err)
	}
}

// Kill stops gossip at once without leaving, as a crash would: others see
// the node dead after their probes fail.
func (a *Agent) Kill() {
	if a.stop() {
		_ = a.ml.Shutdown()
	}
}

// stop reports whether this call is the one that stops the agent.
func (a *Agent) stop() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return false
	}
	a.stopped = true
	return true
}

// Members returns every node the pool knows, this one included, sorted by ID.
func (a *Agent) Members() []Member {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Member, 0, len(a.members))
	for _, m := range a.members {
		out = append(out, m)
	}
	slices.SortFunc(out, func(x, y Member) int {
		if x.ID < y.ID {
			return -1
		} else if x.ID > y.ID {
			return 1
		}
		return 0
	})
	return out
}

// Changed returns a channel closed at the next change of the pool. Read
// Members after it fires; call Changed again for the change after that.
func (a *Agent) Changed() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.changed
}

func (a *Agent) record(n *memberlist.Node, st State) {
	m := Member{
		ID:    n.Name,
		Addr:  net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))),
		State: st,
		Since: a.clock.Now(),
	}
	if err := json.Unmarshal(n.Meta, &m.Meta); err != nil {
		a.logger.Warn("ignoring pool member with unreadable meta", "node", n.Name, "err", err)
		return
	}
	a.mu.Lock()
	if old, ok := a.members[m.ID]; ok && old.State == m.State {
		m.Since = old.Since
	}
	a.members[m.ID] = m
	// Forget nodes long gone, so restarts under new names cannot grow the map.
	for id, o := range a.members {
		if o.State != StateAlive && m.Since.Sub(o.Since) > forgetAfter {
			delete(a.members, id)
		}
	}
	close(a.changed)
	a.changed = make(chan struct{})
	a.mu.Unlock()
}

type events struct{ a *Agent }

func (e events) NotifyJoin(n *memberlist.Node)   { e.a.record(n, StateAlive) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.a.record(n, StateAlive) }
func (e events) NotifyLeave(n *memberlist.Node) {
	// memberlist passes the embedded Node, whose State it does not update,
	// so the "leaving" flag in the meta is the only sign of a graceful leave.
	st := StateDead
	var m Meta
	if json.Unmarshal(n.Meta, &m) == nil && m.Leaving {
		st = StateLeft
	}
	e.a.record(n, st)
}

// delegate announces this node's meta; Strata sends no user messages.
type delegate struct{ a *Agent }

func (d delegate) NodeMeta(limit int) []byte {
	d.a.metaMu.Lock()
	defer d.a.metaMu.Unlock()
	return d.a.meta
}
func (d delegate) NotifyMsg([]byte)                           {}
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d delegate) LocalState(join bool) []byte                { return nil }
func (d delegate) MergeRemoteState(buf []byte, join bool)     {}
