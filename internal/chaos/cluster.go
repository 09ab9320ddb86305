package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/strata-registry/strata/internal/pki"
	"github.com/strata-registry/strata/internal/procwatch"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

// The cluster's name and the identities the chaos run acts as.
const (
	clusterName = "chaos"
	clientName  = "chaos-client"
	adminName   = "chaos-admin"
)

// Roles.
const (
	RoleMeta    = "meta"
	RoleData    = "data"
	RoleSession = "session"
)

// Timing flags: short, so detection and failover take seconds (the local
// gossip profile probes every 200 ms), in the order production keeps
// (a session's publishers go after --session-grace, meta drops a member
// after --dead-grace, which is no shorter).
var (
	gossipFlags = []string{"--gossip-profile", "local"}
	metaFlags   = []string{
		"--dead-grace", "3s",
		"--arrange-interval", "100ms", "--reconcile-interval", "200ms",
		"--raft-heartbeat-timeout", "500ms", "--raft-election-timeout", "500ms",
		"--raft-leader-lease-timeout", "250ms",
	}
	dataFlags = []string{"--heartbeat-interval", "100ms", "--session-grace", "2s",
		"--session-lease", "6s", "--anti-entropy-interval", "5s"}
	sessionFlags = []string{"--client-heartbeat", "1s", "--client-timeout", "4s",
		"--version-scan-interval", "2s", "--disconnect-grace", "5s",
		// Several sessions on one host: the HTTP API's default port (9605)
		// would collide.
		"--http-api-listen", "127.0.0.1:0"}
)

// ClusterConfig is what StartCluster builds.
type ClusterConfig struct {
	// Bin is the directory holding the meta, data and session binaries.
	Bin string
	// Dir is where node logs, data dirs and credentials go.
	Dir string
	// Meta, Data and Session are the node counts (3, 3, 3 by default).
	Meta, Data, Session int
	// Net places the nodes; nil is loopback.
	Net Net
	// Logf reports progress (nil: nothing).
	Logf func(format string, args ...any)
}

// Cluster is a cluster of node processes. Its methods are for one
// goroutine (the runner), except Close and the read-only queries.
type Cluster struct {
	cfg   ClusterConfig
	creds tlsconf.Dir
	httpc *http.Client
	// cluster and client are the cluster name and the client identity
	// the load connects as.
	cluster, client string
	// attached: the nodes are not this run's (a compose project): Close
	// only heals them.
	attached bool

	Metas, Datas, Sessions []*Node
	all                    []*Node
}

// Node is one server process, restartable under the same id, addresses
// and (for meta) data dir.
type Node struct {
	Role, ID string
	Addrs    Addrs
	LogPath  string
	args     []string
	c        *Cluster

	// ctl controls the node when it is not a local process (a
	// container); nil for a process this run started.
	ctl nodeCtl

	mu      sync.Mutex
	proc    *os.Process
	done    chan struct{} // closed when proc has exited
	waitErr error
	frozen  bool
	starts  int
}

// StartCluster writes the credentials and starts every node, waiting
// until each is ready and every slot is led and synced. On error the
// nodes started so far are stopped.
func StartCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	if cfg.Net == nil {
		cfg.Net = NewLoopback()
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	c := &Cluster{cfg: cfg, creds: tlsconf.Dir(filepath.Join(cfg.Dir, "credentials")), cluster: clusterName, client: clientName}
	ids := func(role string, n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("%s-%d", role, i))
		}
		return out
	}
	plan := pki.Plan{Cluster: clusterName, Meta: ids(RoleMeta, cfg.Meta), Data: ids(RoleData, cfg.Data),
		Session: ids(RoleSession, cfg.Session), Clients: []string{clientName}, Admins: []string{adminName},
		Hosts: []string{"127.0.0.1", "localhost"}}
	addrs := map[string]Addrs{}
	for _, id := range slices.Concat(plan.Meta, plan.Data, plan.Session) {
		a, err := cfg.Net.Addrs(id)
		if err != nil {
			return nil, err
		}
		addrs[id] = a
		if h := host(a.GRPC); !slices.Contains(plan.Hosts, h) {
			plan.Hosts = append(plan.Hosts, h)
		}
	}
	if _, err := pki.Init(c.creds, plan, time.Now()); err != nil {
		return nil, err
	}
	admin, err := tlsconf.Load(c.creds.TLS(identity.RoleAdmin, adminName), clusterName)
	if err != nil {
		return nil, err
	}
	c.httpc = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: admin.Client(identity.AnyNode)}}

	secure := []string{"--cluster", clusterName, "--credentials", string(c.creds), "--log-format", "json"}
	var seeds, metaGRPC []string
	for _, id := range plan.Meta {
		seeds = append(seeds, addrs[id].Gossip)
		metaGRPC = append(metaGRPC, addrs[id].GRPC)
	}
	join := []string{"--meta", strings.Join(metaGRPC, ","), "--join", strings.Join(seeds, ",")}
	add := func(role, id string, extra ...[]string) *Node {
		a := addrs[id]
		args := []string{"--node-id", id, "--grpc-addr", a.GRPC, "--http-addr", a.HTTP, "--gossip-addr", a.Gossip}
		if role == RoleMeta {
			args = append(args, "--raft-addr", a.Raft, "--data-dir", filepath.Join(cfg.Dir, id, "data"))
		}
		args = slices.Concat(append([]string{}, args...), secure, gossipFlags, slices.Concat(extra...))
		n := &Node{Role: role, ID: id, Addrs: a, LogPath: filepath.Join(cfg.Dir, id+".log"), args: args, c: c}
		c.all = append(c.all, n)
		return n
	}
	for _, id := range plan.Meta {
		c.Metas = append(c.Metas, add(RoleMeta, id, []string{"--bootstrap-expect", fmt.Sprint(cfg.Meta), "--join", strings.Join(seeds, ",")}, metaFlags))
	}
	for _, id := range plan.Data {
		c.Datas = append(c.Datas, add(RoleData, id, join, dataFlags))
	}
	for _, id := range plan.Session {
		c.Sessions = append(c.Sessions, add(RoleSession, id, join, sessionFlags))
	}
	fail := func(err error) (*Cluster, error) {
		c.Close()
		return nil, err
	}
	for _, group := range [][]*Node{c.Metas, c.Datas, c.Sessions} {
		for _, n := range group {
			if err := n.Start(); err != nil {
				return fail(err)
			}
		}
		if err := c.WaitReady(ctx, group, time.Minute); err != nil {
			return fail(err)
		}
		cfg.Logf("%d %s nodes ready", len(group), group[0].Role)
	}
	if err := c.WaitSettled(ctx, time.Minute); err != nil {
		return fail(err)
	}
	return c, nil
}

func host(addr string) string {
	h, _, _ := strings.Cut(addr, ":")
	return h
}

// Nodes returns every node.
func (c *Cluster) Nodes() []*Node { return c.all }

// ClientOptions are the options a client of the cluster needs: the
// client identity's credentials and the sessions (or, with meta, the
// meta nodes to discover them from).
func (c *Cluster) ClientOptions(viaMeta bool) []client.Option {
	opts := []client.Option{c.credentials()}
	var addrs []string
	for _, s := range c.Sessions {
		addrs = append(addrs, s.Addrs.GRPC)
	}
	opts = append(opts, client.WithSessions(addrs...))
	if viaMeta {
		var metas []string
		for _, m := range c.Metas {
			metas = append(metas, m.Addrs.GRPC)
		}
		opts = append(opts, client.WithMeta(metas...))
	}
	return opts
}

// ByGRPC returns the node serving gRPC at addr, or nil.
func (c *Cluster) ByGRPC(addr string) *Node {
	for _, n := range c.all {
		if n.Addrs.GRPC == addr {
			return n
		}
	}
	return nil
}

// ByID returns the node called id, or nil.
func (c *Cluster) ByID(id string) *Node {
	for _, n := range c.all {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// Close stops every node (SIGCONT first for a frozen one, then SIGTERM,
// SIGKILL after 10 s) and removes what the Net made. Safe to call twice.
func (c *Cluster) Close() {
	if c.attached {
		c.heal()
		return
	}
	var wg sync.WaitGroup
	for _, n := range c.all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.Term(10 * time.Second)
		}()
	}
	wg.Wait()
	if err := c.cfg.Net.Close(); err != nil {
		c.cfg.Logf("cleanup: %v", err)
	}
}

// Start starts the node's process (again, after a kill or stop) and
// returns once it has logged "<role> node started"; not yet ready.
func (n *Node) Start() error {
	if n.ctl != nil {
		return n.ctl.start()
	}
	n.mu.Lock()
	if n.proc != nil && !exited(n.done) {
		n.mu.Unlock()
		return fmt.Errorf("chaos: %s already running", n.ID)
	}
	n.starts++
	f, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.mu.Unlock()
		return err
	}
	fmt.Fprintf(f, "{\"msg\":\"chaos: start #%d\",\"time\":%q}\n", n.starts, time.Now().Format(time.RFC3339Nano))
	w := procwatch.New[struct{}](f, n.Role+" node started")
	cmd := n.c.cfg.Net.Command(n.ID, filepath.Join(n.c.cfg.Bin, n.Role), n.args...)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "STRATA_") })
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		n.mu.Unlock()
		return fmt.Errorf("chaos: start %s: %w", n.ID, err)
	}
	done := make(chan struct{})
	n.proc, n.done, n.frozen = cmd.Process, done, false
	n.mu.Unlock()
	go func() {
		err := cmd.Wait()
		_ = f.Close()
		n.mu.Lock()
		n.waitErr = err
		n.mu.Unlock()
		close(done)
	}()
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case <-w.Found():
		return nil
	case <-done:
		return fmt.Errorf("chaos: %s exited while starting (%v); see %s", n.ID, n.exitErr(), n.LogPath)
	case <-t.C:
		return fmt.Errorf("chaos: %s: no %q line in 30s; see %s", n.ID, w.Want(), n.LogPath)
	}
}

func (n *Node) exitErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.waitErr
}

func exited(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Running reports whether the process is alive (frozen counts).
func (n *Node) Running() bool {
	if n.ctl != nil {
		return n.ctl.running()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil && !exited(n.done)
}

// Frozen reports whether the node is stopped by SIGSTOP.
func (n *Node) Frozen() bool {
	if n.ctl != nil {
		return n.ctl.frozen()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.frozen
}

// signal sends sig to the running process.
func (n *Node) signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil || exited(n.done) {
		return fmt.Errorf("chaos: %s is not running", n.ID)
	}
	if err := n.proc.Signal(sig); err != nil {
		return fmt.Errorf("chaos: %s: %v: %w", n.ID, sig, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		n.frozen = true
	case syscall.SIGCONT:
		n.frozen = false
	}
	return nil
}

// Kill sends SIGKILL (a crash) and waits for the exit.
func (n *Node) Kill() error {
	if n.ctl != nil {
		return n.ctl.kill()
	}
	if err := n.signal(syscall.SIGKILL); err != nil {
		return err
	}
	n.wait()
	return nil
}

func (n *Node) wait() {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done != nil {
		<-done
	}
}

// Freeze sends SIGSTOP (a container: docker pause).
func (n *Node) Freeze() error {
	if n.ctl != nil {
		return n.ctl.freeze()
	}
	return n.signal(syscall.SIGSTOP)
}

// Thaw sends SIGCONT (a container: docker unpause).
func (n *Node) Thaw() error {
	if n.ctl != nil {
		return n.ctl.thaw()
	}
	return n.signal(syscall.SIGCONT)
}

// Term stops the node gracefully: SIGCONT if frozen, SIGTERM, and
// SIGKILL if it is still running after grace. It returns once the
// process has exited; nothing when it is not running.
func (n *Node) Term(grace time.Duration) {
	if n.ctl != nil {
		n.ctl.term(grace)
		return
	}
	if !n.Running() {
		return
	}
	if n.Frozen() {
		_ = n.Thaw()
	}
	_ = n.signal(syscall.SIGTERM)
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		_ = n.signal(syscall.SIGKILL)
		<-done
	}
}

// get GETs path from n's admin HTTP and decodes the body into v; a
// status other than 200 is an error (the body is still decoded).
func (c *Cluster) get(n *Node, path string, v any) error {
	resp, err := c.httpc.Get("https://" + n.Addrs.HTTP + path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", n.ID, path, err)
	}
	defer resp.Body.Close()
	derr := json.NewDecoder(resp.Body).Decode(v)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", n.ID, path, resp.Status)
	}
	if derr != nil {
		return fmt.Errorf("%s %s: decode: %w", n.ID, path, derr)
	}
	return nil
}

// Ready reports whether n answers 200 on /readyz.
func (c *Cluster) Ready(n *Node) error {
	if !n.Running() {
		return fmt.Errorf("%s not running", n.ID)
	}
	var detail any
	if err := c.get(n, "/readyz", &detail); err != nil {
		return fmt.Errorf("%w (%v)", err, detail)
	}
	return nil
}

// Poll calls f every 100 ms until it returns nil or timeout passes; the
// error says what f said last.
func Poll(ctx context.Context, timeout time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %v: %w", timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitReady waits until every node of nodes is ready.
func (c *Cluster) WaitReady(ctx context.Context, nodes []*Node, timeout time.Duration) error {
	return Poll(ctx, timeout, func() error {
		for _, n := range nodes {
			if err := c.Ready(n); err != nil {
				return err
			}
		}
		return nil
	})
}

// MetaLeader returns the meta node that says it leads Raft, or nil.
func (c *Cluster) MetaLeader() *Node {
	for _, m := range c.Metas {
		if !m.Running() || m.Frozen() {
			continue
		}
		var v struct {
			IsLeader bool `json:"is_leader"`
		}
		if c.get(m, "/readyz", &v) == nil && v.IsLeader {
			return m
		}
	}
	return nil
}

// metaSettled asks the meta leader's /readyz detail whether the slots
// are settled.
func (c *Cluster) metaSettled() error {
	for _, m := range c.Metas {
		if !m.Running() || m.Frozen() {
			continue
		}
		var v struct {
			IsLeader bool `json:"is_leader"`
			Slots    *struct {
				State        string `json:"state"`
				PendingMoves int    `json:"pending_moves"`
				Syncing      int    `json:"followers_syncing"`
				Handovers    *int   `json:"handovers"`
			} `json:"slots"`
		}
		if c.get(m, "/readyz", &v) != nil || !v.IsLeader {
			continue
		}
		if v.Slots == nil {
			return fmt.Errorf("meta leader %s: no slots detail in /readyz", m.ID)
		}
		if v.Slots.State != "settled" {
			h := -1
			if v.Slots.Handovers != nil {
				h = *v.Slots.Handovers
			}
			return fmt.Errorf("meta leader %s: slots %s (%d moves pending, %d copies syncing, %d handovers)",
				m.ID, v.Slots.State, v.Slots.PendingMoves, v.Slots.Syncing, h)
		}
		return nil
	}
	return errors.New("no meta leader answered")
}

// Table is meta's slot table as /api/v1/slots shows it.
type Table struct {
	Epoch    uint64 `json:"epoch"`
	Settings struct {
		Count    int
		Replicas int
	} `json:"settings"`
	Slots []struct {
		ID        uint32   `json:"id"`
		Leader    string   `json:"leader"`
		Followers []string `json:"followers"`
		Synced    []string `json:"synced"`
	} `json:"slots"`
	hasher *slot.Hasher
}

// Table reads the slot table from the first live meta node that answers.
func (c *Cluster) Table() (*Table, error) {
	var errs []error
	for _, m := range c.Metas {
		if !m.Running() || m.Frozen() {
			continue
		}
		var t Table
		err := c.get(m, "/api/v1/slots", &t)
		if err == nil && t.Settings.Count > 0 {
			h, herr := slot.NewHasher(t.Settings.Count)
			if herr != nil {
				return nil, herr
			}
			t.hasher = h
			return &t, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("no meta node answered: %w", errors.Join(errs...))
}

// epoch is t's epoch (0 for nil).
func (t *Table) epoch() uint64 {
	if t == nil {
		return 0
	}
	return t.Epoch
}

// LeaderOf returns the data node leading key's slot.
func (t *Table) LeaderOf(key string) string {
	if t == nil || t.hasher == nil {
		return ""
	}
	id := int(t.hasher.Of(key))
	if id >= len(t.Slots) {
		return ""
	}
	return t.Slots[id].Leader
}

// WaitSettled waits until every slot has a leader and its followers,
// all synced, every running data node leads some slot, and the meta
// leader's readiness says settled (no move pending, no copy syncing, no
// handover in flight).
func (c *Cluster) WaitSettled(ctx context.Context, timeout time.Duration) error {
	return Poll(ctx, timeout, func() error {
		if err := c.metaSettled(); err != nil {
			return err
		}
		t, err := c.Table()
		if err != nil {
			return err
		}
		if len(t.Slots) != t.Settings.Count {
			return fmt.Errorf("table epoch %d has %d of %d slots", t.Epoch, len(t.Slots), t.Settings.Count)
		}
		want := min(t.Settings.Replicas, len(c.Datas)) - 1
		leads := map[string]int{}
		for _, r := range t.Slots {
			if r.Leader == "" || len(r.Followers) < want || len(r.Synced) != len(r.Followers) {
				return fmt.Errorf("table epoch %d: slot %d (leader %q, followers %v, synced %v) not settled",
					t.Epoch, r.ID, r.Leader, r.Followers, r.Synced)
			}
			leads[r.Leader]++
		}
		// A restarted data node is ready before meta admits it back; until
		// then meta's table looks settled without it, and its slots are
		// about to move back.
		for _, d := range c.Datas {
			if d.Running() && !d.Frozen() && leads[d.ID] == 0 {
				return fmt.Errorf("table epoch %d: %s leads no slot yet", t.Epoch, d.ID)
			}
		}
		return nil
	})
}
