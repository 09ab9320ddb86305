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
	"bytes"
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
	// Boot is a nonce the agent draws at each start: it names this run of
	// the node, which a leave intent refers to (see leave.go).
	Boot string `json:"boot,omitempty"`
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
	// (loopback tests: faster probes and suspicion, no compression).
	Profile string
	// Timing overrides the profile's failure-detection timings.
	Timing Timing
	// RetryJoin is the pause between join attempts.
	RetryJoin time.Duration
	// Keys encrypt and authenticate every gossip message (AES-GCM, the
	// first key encrypts, all decrypt; see keyring.go). A node without the
	// cluster's keys can neither join nor read the pool. Nil: plaintext
	// gossip, for nodes that run without authentication.
	Keys [][]byte
}

// leavePropagate bounds how long Leave waits for its leave intent to be
// gossiped before it leaves, per profile (Serf's LeavePropagateDelay plays
// the same part). The wait ends as soon as memberlist has sent the intent
// as often as any broadcast; peers that miss it get it by push/pull.
var leavePropagate = map[string]time.Duration{"": time.Second, "lan": time.Second, "local": 500 * time.Millisecond}

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

	meta []byte // encoded Meta, announced through the delegate; fixed
	// budget holds the failure-detection timings in force (DetectionBudget).
	budget timings

	mu sync.Mutex
	// members holds every node seen; dead and left ones for forgetAfter.
	members map[string]Member
	// intents holds the leave intents learned: when each process left
	// (leave.go).
	intents map[process]int64
	// alive counts the members in StateAlive, this node included.
	alive int
	// bcast queues the intents to gossip.
	bcast *memberlist.TransmitLimitedQueue
	// changed is closed, and replaced, at every change of members.
	changed chan struct{}
	// stopped is set by Leave or Kill; memberlist panics on a second stop.
	stopped bool
	// joined is set once JoinLoop has reached a seed (or had none).
	joined bool

	// keyring is memberlist's (nil without encryption); safe for
	// concurrent use on its own.
	keyring *memberlist.Keyring
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
	cfg.Meta.Boot = newBoot()
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
		intents: make(map[process]int64),
	}
	mc, err := profileConfig(cfg.Profile)
	if err != nil {
		return nil, err
	}
	if err := cfg.Timing.apply(mc); err != nil {
		return nil, err
	}
	a.budget = budgetOf(mc)
	mc.Name = cfg.NodeID
	mc.BindAddr = cfg.BindAddr
	mc.BindPort = cfg.BindPort
	mc.AdvertisePort = cfg.BindPort
	if cfg.AdvertiseAddr != "" {
		mc.AdvertiseAddr = cfg.AdvertiseAddr
	}
	if len(cfg.Keys) > 0 {
		kr, err := memberlist.NewKeyring(cfg.Keys, cfg.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("%w: gossip keys: %v", ErrBadConfig, err)
		}
		a.keyring = kr
		mc.Keyring = kr
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	a.bcast = &memberlist.TransmitLimitedQueue{NumNodes: a.numAlive, RetransmitMult: mc.RetransmitMult}
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

// profileConfig returns memberlist's configuration for a profile.
func profileConfig(profile string) (*memberlist.Config, error) {
	var mc *memberlist.Config
	switch profile {
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
		// Loopback has bandwidth to spare, and memberlist's LZW costs a
		// 64 KiB table per message sent: a third of an in-process
		// cluster's garbage, for nothing.
		mc.EnableCompression = false
	default:
		return nil, fmt.Errorf("%w: unknown gossip profile %q (want lan or local)", ErrBadConfig, profile)
	}
	return mc, nil
}

// CheckTiming reports whether timing works with profile (the check New
// makes), so that a node can refuse a bad flag before it opens anything.
func CheckTiming(profile string, timing Timing) error {
	mc, err := profileConfig(profile)
	if err != nil {
		return err
	}
	return timing.apply(mc)
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
	sent := make(chan struct{})
	a.learnIntent(leaveIntent{Node: a.cfg.NodeID, Boot: a.cfg.Meta.Boot, At: a.clock.Now().UnixNano()}, sent)
	// Network propagation, not a lease: real time, whatever the clock.
	t := time.NewTimer(leavePropagate[a.cfg.Profile])
	select {
	case <-sent:
	case <-t.C:
	}
	t.Stop()
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

// Member returns the member with node id id, if the pool has seen it: one
// lookup, for a caller on a request's path that needs one node (Members
// copies and sorts them all).
func (a *Agent) Member(id string) (Member, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m, ok := a.members[id]
	return m, ok
}

// Changed returns a channel closed at the next change of the pool. Read
// Members after it fires; call Changed again for the change after that.
func (a *Agent) Changed() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.changed
}

// record sets a member's state from a memberlist event; gone is a leave
// or a death, which the intents tell apart.
func (a *Agent) record(n *memberlist.Node, gone bool) {
	m := Member{
		ID:    n.Name,
		Addr:  net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))),
		State: StateAlive,
		Since: a.clock.Now(),
	}
	if err := json.Unmarshal(n.Meta, &m.Meta); err != nil {
		a.logger.Warn("ignoring pool member with unreadable meta", "node", n.Name, "err", err)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if gone {
		m.State = StateDead
		if a.leftIntent(m.ID, m.Meta) {
			m.State = StateLeft
		}
	}
	old, ok := a.members[m.ID]
	if ok && old.State == m.State {
		m.Since = old.Since
	}
	if ok && old.State == StateAlive {
		a.alive--
	}
	if m.State == StateAlive {
		a.alive++
	}
	a.members[m.ID] = m
	// Forget nodes long gone, so restarts under new names cannot grow the map.
	for id, o := range a.members {
		if o.State != StateAlive && m.Since.Sub(o.Since) > forgetAfter {
			delete(a.members, id)
		}
	}
	a.notifyLocked()
}

// notifyLocked wakes the waiters on Changed. Caller holds a.mu.
func (a *Agent) notifyLocked() {
	close(a.changed)
	a.changed = make(chan struct{})
}

// numAlive counts the live members, this node included, for the broadcast
// queue's retransmit limit.
func (a *Agent) numAlive() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return max(a.alive, 1)
}

type events struct{ a *Agent }

func (e events) NotifyJoin(n *memberlist.Node)   { e.a.record(n, false) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.a.record(n, false) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.a.record(n, true) }

// delegate announces this node's meta and gossips leave intents (leave.go).
type delegate struct{ a *Agent }

func (d delegate) NodeMeta(limit int) []byte { return d.a.meta }
func (d delegate) NotifyMsg(msg []byte)      { d.a.readIntent(msg) }
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.a.bcast.GetBroadcasts(overhead, limit)
}
func (d delegate) LocalState(join bool) []byte            { return d.a.localIntents() }
func (d delegate) MergeRemoteState(buf []byte, join bool) { d.a.mergeIntents(buf) }

// SetKeys makes keys the gossip keyring, in the order of a key file: the
// first encrypts, every one decrypts, and keys not listed stop decrypting.
// It is how a running node takes a rotated key file (SIGHUP). An agent
// started without keys cannot start encrypting: that needs a restart.
func (a *Agent) SetKeys(keys [][]byte) error {
	if a.keyring == nil {
		return errors.New("cluster: gossip runs without encryption; restart the node with a key file to encrypt it")
	}
	if len(keys) == 0 {
		return errors.New("cluster: no gossip key")
	}
	for _, k := range keys {
		if err := a.keyring.AddKey(k); err != nil {
			return fmt.Errorf("cluster: install gossip key: %w", err)
		}
	}
	if err := a.keyring.UseKey(keys[0]); err != nil {
		return fmt.Errorf("cluster: use gossip key: %w", err)
	}
	// GetKeys returns the keyring's own slice, which RemoveKey shifts in
	// place: iterate over a copy, or the key after each removed one is
	// skipped (and stays installed).
	for _, old := range slices.Clone(a.keyring.GetKeys()) {
		if !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, old) }) {
			if err := a.keyring.RemoveKey(old); err != nil {
				return fmt.Errorf("cluster: remove gossip key: %w", err)
			}
		}
	}
	return nil
}

// KeyInfo describes the gossip keyring without its secrets: each key's
// fingerprint (the first 8 bytes of its SHA-256, hex) and which one
// encrypts.
type KeyInfo struct {
	Primary string   `json:"primary"`
	Keys    []string `json:"keys"`
}

// Keyring returns the keyring's fingerprints; zero without encryption.
func (a *Agent) Keyring() KeyInfo {
	if a.keyring == nil {
		return KeyInfo{}
	}
	info := KeyInfo{Primary: Fingerprint(a.keyring.GetPrimaryKey())}
	for _, k := range a.keyring.GetKeys() {
		info.Keys = append(info.Keys, Fingerprint(k))
	}
	return info
}
