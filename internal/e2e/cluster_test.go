//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/pki"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

// Timings: the defaults are for production; these make failure handling
// fast enough for a test while keeping its order (a session's publishers
// go after --session-grace, meta drops the node after --dead-grace, which
// is no shorter). Gossip keeps its production ("lan") profile: the
// binaries have no flag for it, so a crashed node is seen dead after
// memberlist's suspicion timeout, several seconds.
var (
	metaFlags = []string{
		"--dead-grace", "1s",
		"--arrange-interval", "100ms", "--reconcile-interval", "200ms",
		"--raft-heartbeat-timeout", "500ms", "--raft-election-timeout", "500ms",
		"--raft-leader-lease-timeout", "250ms",
	}
	dataFlags = []string{"--heartbeat-interval", "100ms", "--session-grace", "1s"}
	// No connection balance: the test decides which session it kills by
	// where the publisher is, so the publisher must not be moved.
	sessionFlags = []string{"--balance-interval", "0"}
)

const (
	// settleWait bounds a wait for the cluster to form or settle.
	settleWait = 30 * time.Second
	// deathWait bounds a wait that includes gossip noticing a crash.
	deathWait = 40 * time.Second
)

// cluster is 3 meta, 3 data and 2 session processes on loopback.
type cluster struct {
	bin, dir string
	// creds holds every node's, the client's and the operator's
	// credentials (registryctl certs init's layout); the nodes start with
	// --credentials, as make run's do.
	creds tlsconf.Dir
	// httpc reaches admin HTTP as the operator (e2eAdmin).
	httpc *http.Client
	// nodes is every node started, in start order.
	nodes                  []*node
	metas, datas, sessions []*node
}

// The cluster's name and the identities the test acts as.
const (
	e2eCluster = "e2e"
	e2eClient  = "e2e-client"
	e2eAdmin   = "e2e-admin"
)

// credentials writes the cluster's credentials and sets up the
// operator's HTTP client with them.
func (c *cluster) credentials(t *testing.T) {
	t.Helper()
	c.creds = tlsconf.Dir(filepath.Join(c.dir, "credentials"))
	_, err := pki.Init(c.creds, pki.Plan{Cluster: e2eCluster,
		Meta: []string{"meta-0", "meta-1", "meta-2"}, Data: []string{"data-0", "data-1", "data-2"}, Session: []string{"session-0", "session-1"},
		Clients: []string{e2eClient}, Admins: []string{e2eAdmin}, Hosts: []string{"127.0.0.1"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	admin, err := tlsconf.Load(c.creds.TLS(identity.RoleAdmin, e2eAdmin), e2eCluster)
	if err != nil {
		t.Fatal(err)
	}
	// No keep-alives, so no idle connection (and its goroutines) outlives
	// a request.
	c.httpc = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: admin.Client(identity.AnyNode)}}
}

// clientCredentials are the test client's (e2eClient), found as the
// README's client finds make run's: client.CredentialsDir on the
// credentials directory, for the cluster's name.
func (c *cluster) clientCredentials() client.Credentials {
	cr := client.CredentialsDir(string(c.creds), e2eClient)
	cr.Cluster = e2eCluster
	return cr
}

// startCluster starts the cluster and waits until it has settled: a meta
// leader, every member registered, every data and session node ready,
// and every slot led with its followers synced. Cleanup stops every node
// and, when the test failed, prints the tail of each node's log.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{bin: binaries(t), dir: t.TempDir()}
	c.credentials(t)
	// Registered first, so it runs last: the logs then show the shutdown.
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs(t)
		}
	})
	t.Cleanup(func() { stopAll(t, c.nodes) })
	secure := c.secureFlags()

	// meta-0 first: the others join its gossip address, which only its
	// log can tell. All three expect 3, as in production.
	meta := func(i int, join ...string) *node {
		id := fmt.Sprintf("meta-%d", i)
		args := slices.Concat([]string{"--raft-addr", anyPort, "--data-dir", filepath.Join(c.dir, id), "--bootstrap-expect", "3"}, secure, metaFlags)
		if len(join) > 0 {
			args = append(args, "--join", strings.Join(join, ","))
		}
		return startNode(t, c.bin, c.dir, "meta", id, c.track, args...)
	}
	c.metas = append(c.metas, meta(0))
	for i := 1; i < 3; i++ {
		c.metas = append(c.metas, meta(i, c.metas[0].addrs.Gossip))
	}
	c.waitReady(t, c.metas) // a leader, and the cluster initialized

	for i := range 3 {
		c.datas = append(c.datas, startNode(t, c.bin, c.dir, "data", fmt.Sprintf("data-%d", i), c.track, slices.Concat(c.joinFlags(), dataFlags)...))
	}
	c.waitReady(t, c.datas)
	for i := range 2 {
		c.addSession(t, fmt.Sprintf("session-%d", i))
	}
	c.waitReady(t, c.sessions)
	c.checkAdvertised(t)
	c.waitSettled(t)
	return c
}

// secureFlags are every node's: the cluster's name and credentials, as
// make run passes them.
func (c *cluster) secureFlags() []string {
	return []string{"--cluster", e2eCluster, "--credentials", string(c.creds)}
}

// joinFlags are a data or session node's: the meta nodes, the gossip
// seeds, and secureFlags.
func (c *cluster) joinFlags() []string {
	return slices.Concat([]string{"--meta", strings.Join(c.metaAddrs(), ","), "--join", strings.Join(c.gossipSeeds(), ",")}, c.secureFlags())
}

// track makes n the cluster's: it reaches admin HTTP as the operator and
// is stopped at cleanup.
func (c *cluster) track(n *node) { n.http = c.httpc; c.nodes = append(c.nodes, n) }

// addSession starts the session node id (its certificate must be in the
// credentials directory) and returns once it has logged that it started;
// it need not be ready yet.
func (c *cluster) addSession(t *testing.T, id string) *node {
	t.Helper()
	n := startNode(t, c.bin, c.dir, "session", id, c.track, slices.Concat(c.joinFlags(), sessionFlags)...)
	c.sessions = append(c.sessions, n)
	return n
}

// metaAddrs returns the meta nodes' gRPC addresses.
func (c *cluster) metaAddrs() []string {
	var out []string
	for _, m := range c.metas {
		out = append(out, m.addrs.GRPC)
	}
	return out
}

// gossipSeeds returns the meta nodes' gossip addresses.
func (c *cluster) gossipSeeds() []string {
	var out []string
	for _, m := range c.metas {
		out = append(out, m.addrs.Gossip)
	}
	return out
}

// sessionAddrs returns the session nodes' client (gRPC) addresses.
func (c *cluster) sessionAddrs() []string {
	var out []string
	for _, s := range c.sessions {
		out = append(out, s.addrs.GRPC)
	}
	return out
}

// byGRPC returns the node serving gRPC at addr, or nil.
func (c *cluster) byGRPC(addr string) *node {
	for _, n := range c.nodes {
		if n.addrs.GRPC == addr {
			return n
		}
	}
	return nil
}

// byID returns the node called id, or nil.
func (c *cluster) byID(id string) *node {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// dataNode returns the live data node called id, failing the test if
// there is none.
func (c *cluster) dataNode(t *testing.T, id string) *node {
	t.Helper()
	n := c.byID(id)
	if n == nil || n.role != "data" || n.exited() {
		t.Fatalf("no live data node %q", id)
	}
	return n
}

// waitReady waits until every node answers 200 on /readyz, failing at
// once if one exits.
func (c *cluster) waitReady(t *testing.T, nodes []*node) {
	t.Helper()
	testcluster.Eventually(t, settleWait, func() error {
		for _, n := range nodes {
			if n.exited() {
				t.Fatalf("%s exited: %v", n.id, n.waitErr)
			}
			var detail any
			if err := getJSON(n, "/readyz", &detail); err != nil {
				return fmt.Errorf("%w (%v)", err, detail)
			}
		}
		return nil
	})
}

// membersView is meta's /api/v1/members.
type membersView struct {
	Members []memberRow `json:"members"`
	Meta    []struct {
		ID   string `json:"id"`
		Raft string `json:"raft_address"`
		GRPC string `json:"grpc_address"`
		HTTP string `json:"http_address"`
	} `json:"meta"`
}

// memberRow is one data or session member in meta's /api/v1/members.
type memberRow struct {
	ID   string `json:"id"`
	Role string `json:"role"`
	GRPC string `json:"grpc"`
	HTTP string `json:"http"`
	Proc string `json:"proc"`
}

// slotsView is meta's /api/v1/slots.
type slotsView struct {
	Epoch    uint64 `json:"epoch"`
	Settings struct {
		Count    int
		Replicas int
	} `json:"settings"`
	Slots []slotRow `json:"slots"`
}

type slotRow struct {
	ID          uint32   `json:"id"`
	Leader      string   `json:"leader"`
	LeaderEpoch uint64   `json:"leader_epoch"`
	Followers   []string `json:"followers"`
	Synced      []string `json:"synced"`
}

// checkAdvertised checks that every node is known to the cluster at the
// addresses it logged, which are the ones it bound: meta's members and
// Raft peers, learned over gossip and registration, carry them.
func (c *cluster) checkAdvertised(t *testing.T) {
	t.Helper()
	testcluster.Eventually(t, settleWait, func() error {
		var v membersView
		if err := c.metaGet("/api/v1/members", &v); err != nil {
			return err
		}
		var errs []string
		for _, n := range append(slices.Clone(c.datas), c.sessions...) {
			i := slices.IndexFunc(v.Members, func(m memberRow) bool { return m.ID == n.id })
			switch {
			case i < 0:
				errs = append(errs, n.id+" not a member")
			case v.Members[i].GRPC != n.addrs.GRPC || v.Members[i].HTTP != n.addrs.HTTP || v.Members[i].Role != n.role,
				n.addrs.Proc != "" && v.Members[i].Proc != n.addrs.Proc:
				errs = append(errs, fmt.Sprintf("%s is %+v, logged %+v", n.id, v.Members[i], n.addrs))
			}
		}
		for _, n := range c.metas {
			found := false
			for _, p := range v.Meta {
				if p.ID == n.id {
					found = true
					if p.Raft != n.addrs.Raft || p.GRPC != n.addrs.GRPC || p.HTTP != n.addrs.HTTP {
						errs = append(errs, fmt.Sprintf("meta peer %+v, logged %+v", p, n.addrs))
					}
				}
			}
			if !found {
				errs = append(errs, n.id+" not a Raft peer")
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%s", strings.Join(errs, "; "))
		}
		return nil
	})
}

// waitSettled waits until every slot has a leader and its followers, all
// synced.
func (c *cluster) waitSettled(t *testing.T) {
	t.Helper()
	testcluster.Eventually(t, settleWait, func() error {
		var v slotsView
		if err := c.metaGet("/api/v1/slots", &v); err != nil {
			return err
		}
		if v.Settings.Count == 0 || len(v.Slots) != v.Settings.Count {
			return fmt.Errorf("table epoch %d has %d of %d slots", v.Epoch, len(v.Slots), v.Settings.Count)
		}
		want := min(v.Settings.Replicas, len(c.datas)) - 1
		for _, r := range v.Slots {
			if r.Leader == "" || len(r.Followers) < want || len(r.Synced) != len(r.Followers) {
				return fmt.Errorf("table epoch %d: slot %+v not settled", v.Epoch, r)
			}
		}
		return nil
	})
}

// route returns the slot row holding dataInfoID in meta's table.
func (c *cluster) route(t *testing.T, dataInfoID string) slotRow {
	t.Helper()
	var row slotRow
	testcluster.Eventually(t, settleWait, func() error {
		var v slotsView
		if err := c.metaGet("/api/v1/slots", &v); err != nil {
			return err
		}
		h, err := slot.NewHasher(v.Settings.Count)
		if err != nil {
			return err
		}
		id := h.Of(dataInfoID)
		if int(id) >= len(v.Slots) {
			return fmt.Errorf("slot %d of %q not in a table of %d", id, dataInfoID, len(v.Slots))
		}
		row = v.Slots[id]
		return nil
	})
	return row
}

// waitMemberGone waits until meta no longer lists the node as a member:
// gossip saw it dead and --dead-grace passed.
func (c *cluster) waitMemberGone(t *testing.T, id string) {
	t.Helper()
	testcluster.Eventually(t, deathWait, func() error {
		var v membersView
		if err := c.metaGet("/api/v1/members", &v); err != nil {
			return err
		}
		for _, m := range v.Members {
			if m.ID == id {
				return fmt.Errorf("%s still a member", id)
			}
		}
		return nil
	})
}

// metaGet GETs path from the first live meta node that answers 200.
func (c *cluster) metaGet(path string, v any) error {
	var errs []string
	for _, m := range c.metas {
		if m.exited() {
			continue
		}
		err := getJSON(m, path, v)
		if err == nil {
			return nil
		}
		errs = append(errs, err.Error())
	}
	return fmt.Errorf("no meta node answered %s: %s", path, strings.Join(errs, "; "))
}

// getJSON GETs path from n's admin HTTP address and decodes the body into
// v; a status other than 200 is an error (the body is still decoded).
func getJSON(n *node, path string, v any) error {
	resp, err := n.http.Get("https://" + n.addrs.HTTP + path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", n.id, path, err)
	}
	defer resp.Body.Close()
	derr := json.NewDecoder(resp.Body).Decode(v)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", n.id, path, resp.Status)
	}
	if derr != nil {
		return fmt.Errorf("%s %s: decode: %w", n.id, path, derr)
	}
	return nil
}

// dumpLogs prints the tail of every node's log.
func (c *cluster) dumpLogs(t *testing.T) {
	for _, n := range c.nodes {
		how := "stopped at cleanup"
		if n.killed {
			how = "killed by the test"
		}
		t.Logf("---- %s (%s, %s): last %d lines of %s ----\n%s", n.id, n.addrs.GRPC, how, tailLines, n.logPath, tail(n.logPath, tailLines))
	}
}
