package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/discovery"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/record"
)

// waitCtx bounds one wait of a test.
func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testcluster.DefaultWait)
	t.Cleanup(cancel)
	return ctx
}

// execute runs registryctl with args in-process, as main would, and
// returns what it wrote to stdout and stderr.
func execute(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newRootCommand()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(t.Context())
	return out.String(), errb.String(), err
}

// executeJSON runs registryctl with -o json and decodes stdout into v.
func executeJSON(t *testing.T, v any, args ...string) error {
	t.Helper()
	out, stderr, err := execute(t, append(args, "-o", "json")...)
	if out != "" {
		if jerr := json.Unmarshal([]byte(out), v); jerr != nil {
			t.Fatalf("registryctl %v: bad JSON (%v):\n%s", args, jerr, out)
		}
	}
	if err != nil {
		return fmt.Errorf("%w (stderr: %s)", err, stderr)
	}
	return nil
}

// useCredentials makes every registryctl command of the test act as c's
// test operator (cluster commands) and test client (pub, sub, get),
// through the environment, as an operator's shell would.
func useCredentials(t *testing.T, c *testcluster.Cluster) {
	t.Setenv("STRATA_CLUSTER", testcluster.Name)
	t.Setenv("STRATA_CREDENTIALS", string(c.Credentials()))
	t.Setenv("STRATA_ADMIN_NAME", testcluster.AdminName)
	t.Setenv("STRATA_CLIENT_NAME", testcluster.ClientName)
}

// TestRegistryctl_AgainstCluster runs every command against a real
// in-process cluster and checks the answers against the servers' own
// state.
func TestRegistryctl_AgainstCluster(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, Session: 1})
	useCredentials(t, c)
	metaAddrs := c.MetaAddrs()
	metaFlag := "--meta=" + strings.Join(metaAddrs, ",")
	c.WaitDataSettled(t)
	leader := c.WaitLeader(t)

	t.Run("members", func(t *testing.T) {
		cl := c.Connect(t, c.Session(0), "client-1", "", true)
		defer cl.Close()
		// The count reaches meta with the session's next heartbeat.
		testcluster.Eventually(t, testcluster.DefaultWait, func() error {
			var v membersView
			if err := executeJSON(t, &v, metaFlag, "members"); err != nil {
				return err
			}
			var ids []string
			leaders := 0
			for _, m := range v.Members {
				ids = append(ids, m.Role+"/"+m.ID)
				if m.Role == "meta" && m.State == "leader" {
					leaders++
				}
				if m.ID == "session-0" && (m.Connections == nil || *m.Connections != 1) {
					return fmt.Errorf("session-0 connections %v, want 1", m.Connections)
				}
			}
			want := []string{"meta/meta-0", "meta/meta-1", "meta/meta-2", "data/data-0", "data/data-1", "data/data-2", "session/session-0"}
			if !slices.Equal(ids, want) {
				t.Fatalf("members %v, want %v", ids, want)
			}
			if leaders != 1 || v.SlotCount != 256 || v.ClusterID == "" {
				t.Fatalf("members: %d meta leaders, %d slots, cluster %q", leaders, v.SlotCount, v.ClusterID)
			}
			return nil
		})
		out, _, err := execute(t, metaFlag, "members")
		if err != nil || !strings.Contains(out, "session-0") || !strings.Contains(out, "3 meta, 3 data, 1 session") {
			t.Errorf("members table (err %v):\n%s", err, out)
		}
	})

	t.Run("leader", func(t *testing.T) {
		var v leaderView
		if err := executeJSON(t, &v, metaFlag, "leader"); err != nil {
			t.Fatal(err)
		}
		if v.ID != leader.ID || v.GRPCAddress != leader.Server().GRPCAddr() || v.Term == 0 {
			t.Errorf("leader = %+v, want %s at %s", v, leader.ID, leader.Server().GRPCAddr())
		}
	})

	t.Run("slots", func(t *testing.T) {
		var v slotsView
		if err := executeJSON(t, &v, metaFlag, "slots"); err != nil {
			t.Fatal(err)
		}
		st := leader.Server().State()
		if v.TableEpoch != st.Table.Epoch || len(v.Slots) != st.Settings.Count {
			t.Fatalf("slots: epoch %d with %d rows; meta has epoch %d, %d slots", v.TableEpoch, len(v.Slots), st.Table.Epoch, st.Settings.Count)
		}
		for i, r := range v.Slots {
			want := st.Table.Slots[i]
			if r.Slot != uint32(want.ID) || r.Leader != string(want.Leader) || r.LeaderEpoch != want.LeaderEpoch || len(r.Followers) != len(want.Followers) {
				t.Fatalf("slot row %d = %+v, meta has %+v", i, r, want)
			}
			// The table settled: every follower is synced.
			if r.Sync != syncSynced {
				t.Errorf("slot %d sync %q after the table settled", r.Slot, r.Sync)
			}
		}
		leads := 0
		var nodes []string
		for _, n := range v.Nodes {
			leads += n.Leads
			nodes = append(nodes, n.Node)
		}
		if !slices.Equal(nodes, []string{"data-0", "data-1", "data-2"}) || leads != st.Settings.Count {
			t.Errorf("summary covers %v leading %d slots, want every data node and %d", nodes, leads, st.Settings.Count)
		}

		var one slotsView
		if err := executeJSON(t, &one, metaFlag, "slots", "--node", "data-1"); err != nil {
			t.Fatal(err)
		}
		if len(one.Slots) == 0 || len(one.Nodes) != 1 || one.Nodes[0].Node != "data-1" {
			t.Fatalf("--node data-1: %d slots, summary %+v", len(one.Slots), one.Nodes)
		}
		for _, r := range one.Slots {
			if r.Leader != "data-1" && !slices.Contains(r.Followers, "data-1") {
				t.Errorf("--node data-1 shows slot %d, held by %s and %v", r.Slot, r.Leader, r.Followers)
			}
		}
		if _, _, err := execute(t, metaFlag, "slots", "--node", "nope"); err == nil {
			t.Error("slots --node nope: no error for an unknown node")
		}
	})

	t.Run("slot-of", func(t *testing.T) {
		// Publish through the session, then check that the slot slot-of
		// names is where the data tier stored the record.
		cl := c.Connect(t, c.Session(0), "publisher-1", "", true)
		defer cl.Close()
		const dataID = "com.example.registryctl"
		if ack, err := cl.Publish(dataID, "reg-1", 1, "10.1.1.1:80"); err != nil || codes.Code(ack.GetCode()) != codes.OK {
			t.Fatalf("publish: %v %v", ack, err)
		}
		key := record.DataInfoID(dataID, "", "")
		var v slotOfView
		if err := executeJSON(t, &v, metaFlag, "slot-of", dataID); err != nil {
			t.Fatal(err)
		}
		route := c.RouteOf(t, key)
		if v.DataInfoID != key || v.Slot != route.Slot || len(v.Nodes) == 0 || v.Nodes[0].ID != route.Leader.ID {
			t.Fatalf("slot-of = %+v; the cluster routes %s to slot %d led by %s", v, key, route.Slot, route.Leader.ID)
		}
		url := c.URL(v.Nodes[0].HTTPAddress, fmt.Sprintf("/api/v1/datums?slot=%d", v.Slot))
		testcluster.Eventually(t, testcluster.DefaultWait, func() error {
			body, err := httpBody(t, c, url)
			if err != nil {
				return err
			}
			if !strings.Contains(body, key) {
				return fmt.Errorf("%s does not hold %s yet: %s", url, key, body)
			}
			return nil
		})

		// A whole dataInfoID gives the same answer.
		var same slotOfView
		if err := executeJSON(t, &same, metaFlag, "slot-of", key); err != nil || same.Slot != v.Slot {
			t.Errorf("slot-of %s = slot %d (err %v), want %d", key, same.Slot, err, v.Slot)
		}
	})

	t.Run("ls", func(t *testing.T) {
		cl := c.Connect(t, c.Session(0), "publisher-ls", "", true)
		defer cl.Close()
		var want []string
		for i := range 5 {
			dataID := fmt.Sprintf("com.example.ls-%d", i)
			if ack, err := cl.Publish(dataID, "reg-1", 1, "10.2.2.2:80"); err != nil || codes.Code(ack.GetCode()) != codes.OK {
				t.Fatalf("publish %s: %v %v", dataID, ack, err)
			}
			want = append(want, dataID)
		}
		// Acked by the session; on the data leaders a moment later.
		testcluster.Eventually(t, testcluster.DefaultWait, func() error {
			var v lsView
			// One meta address: the command must not share the meta
			// connection pool (sized for the meta nodes) with the leaders.
			if err := executeJSON(t, &v, "--meta="+metaAddrs[0], "ls", "com.example.ls-", "--all", "--limit", "2"); err != nil {
				return err
			}
			var got []string
			for _, e := range v.Services {
				got = append(got, e.DataID)
				if e.Publishers != 1 || e.Group != record.DefaultGroup {
					t.Fatalf("ls entry %+v; want 1 publisher in %s", e, record.DefaultGroup)
				}
			}
			if !slices.Equal(got, want) || v.Next != "" || len(v.Missing) != 0 {
				return fmt.Errorf("ls --all: %v next %q missing %v; want %v", got, v.Next, v.Missing, want)
			}
			return nil
		})
		// Slots may still move (the arranger balances them); a slot in
		// handover makes the listing partial (exit 1) until it is done.
		testcluster.Eventually(t, testcluster.DefaultWait, func() error {
			out, _, err := execute(t, metaFlag, "ls", "com.example.ls-", "--limit", "2")
			if err != nil {
				return err
			}
			if !strings.Contains(out, "com.example.ls-1") || strings.Contains(out, "com.example.ls-2") || !strings.Contains(out, "more: --after 'com.example.ls-1#@#") {
				t.Fatalf("ls one page:\n%s", out)
			}
			return nil
		})
		if _, _, err := execute(t, metaFlag, "ls", "--limit", "0"); err == nil || !strings.Contains(err.Error(), "limit 0") {
			t.Errorf("ls --limit 0: %v; want an error naming the limit", err)
		}
	})

	t.Run("drain undrain drains", func(t *testing.T) {
		creds := client.CredentialsDir(string(c.Credentials()), testcluster.ClientName)
		creds.Cluster = testcluster.Name
		cl, err := client.New(t.Context(), client.WithSessions(c.Session(0).Server().GRPCAddr()), client.WithCredentials(creds),
			client.WithBackoff(20*time.Millisecond, 200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		d := discovery.New(cl)
		const service = "com.example.drained"
		for _, addr := range []string{"10.3.3.1:80", "10.3.3.2:80"} {
			if _, err := d.Register(t.Context(), service, discovery.Instance{Addr: addr}); err != nil {
				t.Fatal(err)
			}
		}
		w, err := d.Watch(t.Context(), service)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		// wait returns the first set in which the instances have the states.
		var last uint64
		wait := func(want map[string]discovery.State) {
			t.Helper()
			for {
				set, err := w.Next(waitCtx(t))
				if err != nil {
					t.Fatalf("watch: %v (last version %d, want %v)", err, last, want)
				}
				if set.Version < last {
					t.Fatalf("version went back: %d after %d", set.Version, last)
				}
				last = set.Version
				got := map[string]discovery.State{}
				for _, inst := range set.Instances {
					got[inst.Addr] = inst.State
				}
				if len(got) == len(want) && func() bool {
					for a, s := range want {
						if st, ok := got[a]; !ok || st != s {
							return false
						}
					}
					return true
				}() {
					return
				}
			}
		}
		wait(map[string]discovery.State{"10.3.3.1:80": discovery.StateServing, "10.3.3.2:80": discovery.StateServing})

		out, _, err := execute(t, metaFlag, "drain", service, "10.3.3.1:80", "--reason", "kernel upgrade")
		if err != nil || !strings.Contains(out, "marked draining: 10.3.3.1:80") {
			t.Fatalf("drain (err %v): %s", err, out)
		}
		wait(map[string]discovery.State{"10.3.3.1:80": discovery.StateDraining, "10.3.3.2:80": discovery.StateServing})
		if _, _, err := execute(t, metaFlag, "drain", service, "10.3.3.2:80", "--disable"); err != nil {
			t.Fatal(err)
		}
		wait(map[string]discovery.State{"10.3.3.1:80": discovery.StateDraining, "10.3.3.2:80": discovery.StateDisabled})

		var v drainsView
		if err := executeJSON(t, &v, metaFlag, "drains"); err != nil {
			t.Fatal(err)
		}
		if len(v.Marks) != 2 || v.Marks[0].Addr != "10.3.3.1:80" || v.Marks[0].Reason != "kernel upgrade" || v.Marks[1].State != "disabled" ||
			!strings.Contains(v.Marks[0].SetBy, testcluster.AdminName) {
			t.Fatalf("drains: %+v", v)
		}
		for _, addr := range []string{"10.3.3.1:80", "10.3.3.2:80"} {
			if _, _, err := execute(t, metaFlag, "undrain", service, addr); err != nil {
				t.Fatal(err)
			}
		}
		wait(map[string]discovery.State{"10.3.3.1:80": discovery.StateServing, "10.3.3.2:80": discovery.StateServing})
		if out, _, err := execute(t, metaFlag, "drains"); err != nil || !strings.Contains(out, "no instance is drained") {
			t.Errorf("drains after undrain (err %v): %s", err, out)
		}
		if _, _, err := execute(t, metaFlag, "drain", service, "no-port"); err == nil || !strings.Contains(err.Error(), "not host:port") {
			t.Errorf("drain of a bad address: %v; want meta's reason", err)
		}
	})

	t.Run("pub sub get", func(t *testing.T) {
		sess := "--session=" + c.Session(0).Server().GRPCAddr()
		const dataID = "com.example.registryctl.pubsub"
		key := record.DataInfoID(dataID, "", "")
		// values reads the current values of the key through get.
		values := func(args ...string) ([]string, snapshotView) {
			t.Helper()
			var v snapshotView
			if err := executeJSON(t, &v, append(args, "get", dataID)...); err != nil {
				t.Fatalf("get: %v", err)
			}
			if v.DataInfoID != key {
				t.Fatalf("get answers for %q, want %q", v.DataInfoID, key)
			}
			var out []string
			for _, r := range v.Values {
				out = append(out, *r.Data)
			}
			slices.Sort(out)
			return out, v
		}
		if got, _ := values(sess); len(got) != 0 {
			t.Fatalf("get of a key nobody published: %v", got)
		}

		// pub holds its publication until interrupted.
		pub1 := startCommand(t, sess, "pub", dataID, "10.0.0.1:80", "-o", "json")
		published := pub1.event(t, 0)
		if published.Event != "published" || published.DataInfoID != key || published.RegisterID == "" || published.Session != c.Session(0).Server().GRPCAddr() {
			t.Fatalf("pub's first event = %+v", published)
		}
		testcluster.Eventually(t, testcluster.DefaultWait, func() error {
			got, v := values(sess)
			if !slices.Equal(got, []string{"10.0.0.1:80"}) {
				return fmt.Errorf("get = %v, want the published value", got)
			}
			if v.Values[0].PublisherID != published.RegisterID {
				t.Errorf("get says %s published it, pub says %s", v.Values[0].PublisherID, published.RegisterID)
			}
			return nil
		})

		// sub --until, through a session meta lists (--session ""), ends
		// once a second publisher's value arrives.
		sub := startCommand(t, "--session=", metaFlag, "sub", dataID, "--until", "10.0.0.2:80", "--for", "30s", "-o", "json")
		pub2 := startCommand(t, sess, "pub", dataID, "10.0.0.2:80")
		if err := sub.wait(t); err != nil {
			t.Fatalf("sub --until: %v (stderr: %s)", err, sub.stderr())
		}
		lines := sub.lines()
		var last snapshotView
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || !holdsData(last, "10.0.0.2:80") || !holdsData(last, "10.0.0.1:80") {
			t.Fatalf("sub --until: last snapshot %s (%v), want both values", lines[len(lines)-1], err)
		}
		pub2.stop()
		if err := pub2.wait(t); err != nil || !strings.HasPrefix(pub2.stdout(), "published ") || !strings.Contains(pub2.stdout(), "\nunpublished ") {
			t.Fatalf("pub interrupted: err %v, output:\n%s", err, pub2.stdout())
		}
		testcluster.Eventually(t, testcluster.DefaultWait, func() error {
			if got, _ := values(sess); !slices.Equal(got, []string{"10.0.0.1:80"}) {
				return fmt.Errorf("get = %v after the second pub was interrupted, want only the first", got)
			}
			return nil
		})

		// pub --for holds for that long, then unpublishes by itself.
		out, _, err := execute(t, sess, "pub", dataID, "10.0.0.3:80", "--for", "10ms")
		if err != nil || strings.Count(out, "published ") != 2 {
			t.Fatalf("pub --for: err %v, output:\n%s", err, out)
		}

		// sub --count 2 sees the value, then its removal when pub1 stops.
		testcluster.Eventually(t, testcluster.DefaultWait, func() error {
			if got, _ := values(sess); !slices.Equal(got, []string{"10.0.0.1:80"}) {
				return fmt.Errorf("get = %v, want only the first value", got)
			}
			return nil
		})
		counted := startCommand(t, sess, "sub", dataID, "--count", "2", "-o", "json")
		if first := counted.snapshot(t, 0); !holdsData(first, "10.0.0.1:80") {
			t.Fatalf("sub's first snapshot %+v lacks the published value", first)
		}
		pub1.stop()
		if err := counted.wait(t); err != nil {
			t.Fatalf("sub --count 2: %v", err)
		}
		if second := counted.snapshot(t, 1); holdsData(second, "10.0.0.1:80") || len(counted.lines()) != 2 {
			t.Fatalf("sub --count 2 printed %d snapshots, the second %+v; want 2, without the unpublished value", len(counted.lines()), second)
		}
		if err := pub1.wait(t); err != nil || pub1.event(t, 1).Event != "unpublished" {
			t.Fatalf("pub interrupted: err %v, output:\n%s", err, pub1.stdout())
		}

		// Table output.
		out, _, err = execute(t, sess, "get", dataID)
		if err != nil || !regexp.MustCompile(`^version \d+: 0 values\n$`).MatchString(out) {
			t.Errorf("get table (err %v): %q", err, out)
		}
	})

	t.Run("health", func(t *testing.T) {
		testcluster.Eventually(t, testcluster.DefaultWait, func() error {
			var v healthView
			if err := executeJSON(t, &v, metaFlag, "health"); err != nil {
				return err
			}
			if !v.Healthy || len(v.Nodes) != 7 {
				t.Fatalf("health succeeded but says healthy=%v with %d nodes", v.Healthy, len(v.Nodes))
			}
			return nil
		})

		// A crashed meta follower stays a Raft voter, so it stays listed,
		// and health must fail on it. The --meta list still names it: the
		// command fails over to the others.
		down := c.Meta((leader.Index + 1) % 3)
		c.Stop(t, down.Index)
		testcluster.Eventually(t, testcluster.DefaultWait, func() error {
			var v healthView
			err := executeJSON(t, &v, metaFlag, "health")
			if err == nil {
				return fmt.Errorf("health exits 0 with %s stopped", down.ID)
			}
			if !strings.Contains(err.Error(), down.ID) {
				return fmt.Errorf("health error %q does not name %s", err, down.ID)
			}
			for _, r := range v.Nodes {
				if r.Node == down.ID && r.Status == healthReady {
					return fmt.Errorf("%s shown ready", down.ID)
				}
			}
			if v.Healthy {
				return fmt.Errorf("JSON says healthy with %s stopped", down.ID)
			}
			return nil
		})
	})
}

// httpBody GETs url from c's admin HTTP as the test operator.
func httpBody(t *testing.T, c *testcluster.Cluster, url string) (string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.HTTP(t, true).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// running is a registryctl command running in the background, as when an
// operator leaves pub or sub running and stops it with Ctrl-C.
type running struct {
	out, errb lockedBuffer
	cancel    context.CancelFunc
	done      chan struct{}
	err       error
}

// startCommand starts registryctl with args; the test's end interrupts it
// and waits for it.
func startCommand(t *testing.T, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	r := &running{cancel: cancel, done: make(chan struct{})}
	cmd := newRootCommand()
	cmd.SetOut(&r.out)
	cmd.SetErr(&r.errb)
	cmd.SetArgs(args)
	go func() {
		defer close(r.done)
		r.err = cmd.ExecuteContext(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// stop interrupts the command, as SIGINT does (main cancels the context).
func (r *running) stop() { r.cancel() }

// wait waits for the command to exit and returns its error.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(testcluster.DefaultWait):
		t.Fatalf("registryctl still running after %v; output:\n%s\nstderr:\n%s", testcluster.DefaultWait, r.out.String(), r.errb.String())
		return nil
	}
}

func (r *running) stdout() string { return r.out.String() }
func (r *running) stderr() string { return r.errb.String() }

// lines returns the complete lines printed so far.
func (r *running) lines() []string {
	s := r.out.String()
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.Split(s[:i], "\n")
	}
	return nil
}

// line waits for the command's line i (from 0) and returns it.
func (r *running) line(t *testing.T, i int) string {
	t.Helper()
	var l string
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		lines := r.lines()
		if len(lines) <= i {
			return fmt.Errorf("%d lines printed, waiting for line %d (stderr: %s)", len(lines), i+1, r.stderr())
		}
		l = lines[i]
		return nil
	})
	return l
}

// event decodes pub's JSON event i.
func (r *running) event(t *testing.T, i int) pubView {
	t.Helper()
	var v pubView
	if l := r.line(t, i); json.Unmarshal([]byte(l), &v) != nil {
		t.Fatalf("pub event %d is not JSON: %s", i, l)
	}
	return v
}

// snapshot decodes sub's JSON snapshot i.
func (r *running) snapshot(t *testing.T, i int) snapshotView {
	t.Helper()
	var v snapshotView
	if l := r.line(t, i); json.Unmarshal([]byte(l), &v) != nil {
		t.Fatalf("sub snapshot %d is not JSON: %s", i, l)
	}
	return v
}

func holdsData(v snapshotView, data string) bool {
	return slices.ContainsFunc(v.Values, func(r valueRow) bool { return r.Data != nil && *r.Data == data })
}

// lockedBuffer is a bytes.Buffer a command writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestRegistryctl_NoSession checks that an unreachable session is an error
// naming the address and the connection error, for every data-plane
// command, within --timeout.
func TestRegistryctl_NoSession(t *testing.T) {
	ln := testcluster.Listen(t)
	addr := ln.Addr().String()
	_ = ln.Close()
	for _, args := range [][]string{{"pub", "x", "v"}, {"sub", "x"}, {"get", "x"}} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			_, _, err := execute(t, append([]string{"--session", addr, "--timeout", "1s"}, args...)...)
			want := "no session reachable at " + addr + " within 1s"
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "connection refused") {
				t.Errorf("err = %v, want %q with the connection error", err, want)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v with --timeout 1s", d)
			}
		})
	}
}

// TestRegistryctl_NoMeta checks that an unreachable meta tier is an error
// naming the addresses tried, for every command.
func TestRegistryctl_NoMeta(t *testing.T) {
	ln := testcluster.Listen(t)
	addr := ln.Addr().String()
	// A closed port refuses at once.
	_ = ln.Close()
	for _, args := range [][]string{{"members"}, {"leader"}, {"slots"}, {"slot-of", "x"}, {"health"}} {
		_, _, err := execute(t, append([]string{"--meta", addr, "--timeout", "2s"}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "no meta node reachable at "+addr) {
			t.Errorf("%v: err = %v, want no meta node reachable at %s", args, err, addr)
		}
	}
}

// TestRegistryctl_Flags checks flag validation and the STRATA_ environment
// overrides; none of these reach the network.
func TestRegistryctl_Flags(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "client.token")
	emptyFile := filepath.Join(t.TempDir(), "empty.token")
	if err := os.WriteFile(tokenFile, []byte("t0k\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(emptyFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string // in the error
	}{
		{"bad output flag", nil, []string{"-o", "xml", "leader"}, `unknown output format "xml"`},
		{"bad output env", map[string]string{"STRATA_OUTPUT": "csv"}, []string{"leader"}, `unknown output format "csv"`},
		{"env loses to flag", map[string]string{"STRATA_OUTPUT": "json"}, []string{"-o", "xml", "leader"}, `unknown output format "xml"`},
		{"no meta", nil, []string{"--meta", " , ", "leader"}, "--meta: no meta address given"},
		{"zero timeout", nil, []string{"--timeout", "0s", "leader"}, "--timeout must be positive"},
		{"bad timeout env", map[string]string{"STRATA_TIMEOUT": "soon"}, []string{"leader"}, "STRATA_TIMEOUT"},
		{"token without TLS", nil, []string{"--token", "t", "get", "x"}, "--token needs TLS"},
		{"token file without TLS", nil, []string{"--token-file", tokenFile, "get", "x"}, "--token-file needs TLS"},
		{"token and token file", nil, []string{"--token", "t", "--token-file", tokenFile, "get", "x"}, "--token and --token-file together"},
		{"token file env and token", map[string]string{"STRATA_TOKEN_FILE": tokenFile}, []string{"--token", "t", "get", "x"}, "--token and --token-file together"},
		{"missing token file", nil, []string{"--token-file", "/nonexistent/tok", "get", "x"}, "--token-file: open /nonexistent/tok"},
		{"empty token file", nil, []string{"--token-file", emptyFile, "get", "x"}, "holds no token"},
		{"cert without CA", nil, []string{"--tls-cert", "c.pem", "--tls-key", "k.pem", "leader"}, "CA file is required"},
		{"cert without key", nil, []string{"--tls-cert", "c.pem", "leader"}, "cert file and key file must be set together"},
		{"slot-of without data ID", nil, []string{"slot-of"}, "accepts 1 arg"},
		{"pub without value", nil, []string{"pub", "x"}, "accepts 2 arg"},
		{"pub negative for", nil, []string{"pub", "x", "v", "--for", "-1s"}, "--for must not be negative"},
		{"pub bad key", nil, []string{"pub", "a#@#b", "v"}, "has 2 parts"},
		{"sub negative count", nil, []string{"sub", "x", "--count", "-1"}, "must not be negative"},
		{"sub bad scope", nil, []string{"sub", "x", "--scope", "planet"}, `unknown --scope "planet"`},
		{"get zone scope without zone", nil, []string{"get", "x", "--scope", "zone"}, "--scope zone needs --zone"},
		{"get key and group", nil, []string{"get", "a#@#b#@#c", "--group", "G"}, "not both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, _, err := execute(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestRegistryctl_Credentials checks registryctl against a cluster that
// authenticates every call: with --credentials (the operator for cluster
// commands, the client for pub and get) or the --tls-* files of one
// identity the commands work; without credentials, or as the wrong
// identity, the error says so.
func TestRegistryctl_Credentials(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1})
	meta := "--meta=" + strings.Join(c.MetaAddrs(), ",")
	creds := []string{"--cluster", testcluster.Name, "--credentials", string(c.Credentials()),
		"--admin-name", testcluster.AdminName, "--client-name", testcluster.ClientName}
	var v leaderView
	if err := executeJSON(t, &v, append(creds, meta, "leader")...); err != nil {
		t.Fatalf("leader with --credentials: %v", err)
	}
	if v.ID != c.Meta(0).ID {
		t.Errorf("leader = %q, want %s", v.ID, c.Meta(0).ID)
	}
	if _, _, err := execute(t, meta, "--timeout", "2s", "leader"); err == nil {
		t.Error("leader without credentials succeeded against a TLS cluster")
	}
	// The client identity may not read the cluster's members.
	client := c.TLS(t, identity.RoleClient, testcluster.ClientName)
	asClient := []string{"--cluster", testcluster.Name, "--tls-cert", client.CertFile, "--tls-key", client.KeyFile, "--tls-ca", client.CAFile}
	if _, _, err := execute(t, append(asClient, meta, "members")...); err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Errorf("members as a client: err = %v, want PermissionDenied", err)
	}

	c.WaitDataSettled(t)
	sess := "--session=" + c.Session(0).Server().GRPCAddr()
	out, stderr, err := execute(t, append(creds, sess, "pub", "com.example.tls", "v1", "--for", "1ms")...)
	if err != nil || strings.Count(out, "published ") != 2 {
		t.Fatalf("pub with --credentials: err %v, output:\n%s%s", err, out, stderr)
	}
	tok := c.Token(t, identity.RoleClient, testcluster.ClientName)
	withToken := []string{"--cluster", testcluster.Name, "--tls-ca", client.CAFile, "--token", tok}
	if out, stderr, err := execute(t, append(withToken, sess, "pub", "com.example.tls", "v1", "--for", "1ms")...); err != nil || strings.Count(out, "published ") != 2 {
		t.Fatalf("pub with --token: err %v, output:\n%s%s", err, out, stderr)
	}
	tokFile := filepath.Join(t.TempDir(), "dev.token")
	if err := os.WriteFile(tokFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withTokenFile := []string{"--cluster", testcluster.Name, "--tls-ca", client.CAFile, "--token-file", tokFile}
	if out, stderr, err := execute(t, append(withTokenFile, sess, "pub", "com.example.tls", "v1", "--for", "1ms")...); err != nil || strings.Count(out, "published ") != 2 {
		t.Fatalf("pub with --token-file: err %v, output:\n%s%s", err, out, stderr)
	}
	if _, _, err := execute(t, "--cluster", testcluster.Name, "--tls-ca", client.CAFile, "--token", "wrong", sess, "pub", "com.example.tls", "v1", "--for", "1ms"); err == nil || !strings.Contains(err.Error(), "unauthenticated") {
		t.Errorf("pub with a wrong token: err = %v, want unauthenticated", err)
	}
	// The SDK's Subscribe does not report the refusal; get times out and
	// names it from the client's log.
	if _, _, err := execute(t, "--cluster", testcluster.Name, "--tls-ca", client.CAFile, "--token", "wrong", sess, "--timeout", "1s", "get", "com.example.tls"); err == nil || !strings.Contains(err.Error(), "refused the client") {
		t.Errorf("get with a wrong token: err = %v, want the session's refusal", err)
	}
	if _, _, err := execute(t, sess, "--timeout", "1s", "get", "com.example.tls"); err == nil || !strings.Contains(err.Error(), "no session reachable") {
		t.Errorf("get without credentials: err = %v, want no session reachable", err)
	}
	if _, _, err := execute(t, sess, "--token", tok, "get", "com.example.tls"); err == nil || !strings.Contains(err.Error(), "needs TLS") {
		t.Errorf("--token without TLS: err = %v, want it refused", err)
	}
}

// TestHealth_Probe checks readiness probing against fake nodes: ready,
// not ready with a reason, unreachable, no address, and the admin token.
func TestHealth_Probe(t *testing.T) {
	var gotAuth []string
	ready := newHTTPServer(t, func(w http.ResponseWriter, r *http.Request) {
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
		fmt.Fprint(w, `{"status":"ready"}`)
	})
	migrating := newHTTPServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"status":"slots migrating","slots":[3,9]}`)
	})
	ln := testcluster.Listen(t)
	closed := ln.Addr().String()
	_ = ln.Close()

	g := &globals{timeout: testcluster.DefaultWait, adminToken: "s3cret"}
	a := g.newAdminHTTP(nil)
	defer a.Close()
	v := probe(t.Context(), a, []healthRow{
		{Node: "a", Role: "meta", Address: ready},
		{Node: "b", Role: "data", Address: migrating},
		{Node: "c", Role: "session", Address: closed},
		{Node: "d", Role: "meta"},
	})
	want := []struct{ status, detail string }{
		{healthReady, ""},
		{healthNotReady, "slots migrating (2 slots)"},
		{healthUnreachable, "connection refused"},
		{healthNoAddress, "no HTTP address known"},
	}
	for i, w := range want {
		r := v.Nodes[i]
		if r.Status != w.status || !strings.Contains(r.Detail, w.detail) {
			t.Errorf("%s: %s %q, want %s %q", r.Node, r.Status, r.Detail, w.status, w.detail)
		}
	}
	if v.Healthy || v.err() == nil {
		t.Error("healthy with three nodes down")
	}
	if !slices.Equal(gotAuth, []string{"Bearer s3cret"}) {
		t.Errorf("Authorization headers %q, want the admin token as a bearer", gotAuth)
	}
}

// TestHealth_Probe_SlotStateFromTheMetaLeader: the slot state is the
// meta leader's, whichever order the meta nodes come in; a follower's is
// used only without the leader's, and never with handovers (it cannot
// know them); data and session answers are never read for it.
func TestHealth_Probe_SlotStateFromTheMetaLeader(t *testing.T) {
	serve := func(body string) string {
		return newHTTPServer(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) })
	}
	follower := serve(`{"status":"ready","is_leader":false,"slots":{"state":"settled","table_epoch":8,"pending_moves":0,"followers_syncing":0,"handovers":5}}`)
	leader := serve(`{"status":"ready","is_leader":true,"slots":{"state":"moving","table_epoch":9,"pending_moves":2,"followers_syncing":1,"handovers":3,"handovers_unreported":1}}`)
	old := serve(`{"status":"ready","is_leader":true}`)
	data := serve(`{"status":"ready","is_leader":true,"slots":{"state":"settled","table_epoch":99,"handovers":0}}`)
	g := &globals{timeout: testcluster.DefaultWait}
	a := g.newAdminHTTP(nil)
	defer a.Close()
	for _, order := range [][]healthRow{
		{{Node: "f", Role: "meta", Address: follower}, {Node: "l", Role: "meta", Address: leader}, {Node: "d", Role: "data", Address: data}},
		{{Node: "d", Role: "data", Address: data}, {Node: "l", Role: "meta", Address: leader}, {Node: "f", Role: "meta", Address: follower}},
	} {
		s := probe(t.Context(), a, order).Slots
		if s.From != "l" || s.State != slotsMoving || s.TableEpoch != 9 || s.PendingMoves != 2 || s.FollowersSyncing != 1 ||
			s.Handovers == nil || *s.Handovers != 3 || s.HandoversUnreported == nil || *s.HandoversUnreported != 1 {
			t.Errorf("slots %+v, want the leader's", s)
		}
	}
	s := probe(t.Context(), a, []healthRow{{Node: "o", Role: "meta", Address: old}, {Node: "f", Role: "meta", Address: follower}}).Slots
	if s.From != "f" || s.State != slotsSettled || s.Handovers != nil || s.settled() {
		t.Errorf("only a follower's detail: %+v (settled %v), want it with handovers unknown, not settled", s, s.settled())
	}
	if s := probe(t.Context(), a, []healthRow{{Node: "o", Role: "meta", Address: old}, {Node: "d", Role: "data", Address: data}}).Slots; s.State != slotsUnknown || s.From != "" {
		t.Errorf("no meta detail: %+v, want unknown", s)
	}
}

// newHTTPServer serves h on loopback until the test ends and returns its
// address.
func newHTTPServer(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// TestKeyring_RotateAcrossTheCluster runs the rotation an operator does:
// install a key in the shared key file, reload every node (SIGHUP), check
// status; make it primary; remove the old one. Every node agrees at every
// round, and the cluster keeps working.
func TestKeyring_RotateAcrossTheCluster(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1})
	useCredentials(t, c)
	meta := "--meta=" + strings.Join(c.MetaAddrs(), ",")
	file := c.GossipKeyFile()
	status := func() keyringView {
		t.Helper()
		var v keyringView
		if err := executeJSON(t, &v, meta, "keyring", "status"); err != nil {
			t.Fatalf("keyring status: %v (%+v)", err, v)
		}
		if len(v.Nodes) != 3 {
			t.Fatalf("status has %d nodes, want 3", len(v.Nodes))
		}
		return v
	}
	old := status().Nodes[0].Primary
	out, _, err := execute(t, "keyring", "install", file)
	if err != nil {
		t.Fatal(err)
	}
	fresh := strings.Fields(strings.Split(out, "\n")[1])[0]
	// One node reloaded, the others not yet: status names the split and
	// fails, as a script waiting for the round to finish needs.
	if err := c.Data(0).Server().Reload(); err != nil {
		t.Fatal(err)
	}
	var split keyringView
	if err := executeJSON(t, &split, meta, "keyring", "status"); err == nil || !strings.Contains(err.Error(), "do not all have the same") {
		t.Fatalf("keyring status with one node reloaded: err = %v, want a disagreement", err)
	}
	if split.Agreed || len(split.Nodes) != 3 {
		t.Fatalf("keyring status with one node reloaded: %+v", split)
	}
	for _, r := range split.Nodes {
		want := 1
		if r.Node == c.Data(0).ID {
			want = 2
		}
		if len(r.Keys) != want {
			t.Errorf("%s has %d keys, want %d", r.Node, len(r.Keys), want)
		}
	}
	c.ReloadAll(t)
	if v := status(); len(v.Nodes[2].Keys) != 2 || v.Nodes[2].Primary != old {
		t.Fatalf("after install: %+v", v)
	}
	if _, _, err := execute(t, "keyring", "remove", file, old); err == nil {
		t.Fatal("removing the primary key succeeded")
	}
	if _, _, err := execute(t, "keyring", "use", file, fresh); err != nil {
		t.Fatal(err)
	}
	c.ReloadAll(t)
	if v := status(); v.Nodes[1].Primary != fresh {
		t.Fatalf("after use: %+v", v)
	}
	if _, _, err := execute(t, "keyring", "remove", file, old); err != nil {
		t.Fatal(err)
	}
	c.ReloadAll(t)
	if v := status(); len(v.Nodes[0].Keys) != 1 || v.Nodes[0].Keys[0] != fresh {
		t.Fatalf("after remove: %+v", v)
	}
	if _, _, err := execute(t, "keyring", "use", file, "nope"); err == nil || !strings.Contains(err.Error(), "no key with fingerprint") {
		t.Errorf("use of an unknown fingerprint: %v", err)
	}
	// Gossip still carries the pool: a new data node joins and is ready.
	c.AddData(t)
	c.WaitDataReady(t)
}
