package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/strata-registry/strata/internal/record"
	"github.com/strata-registry/strata/internal/testcluster"
)

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

// TestRegistryctl_AgainstCluster runs every command against a real
// in-process cluster and checks the answers against the servers' own
// state.
func TestRegistryctl_AgainstCluster(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, Session: 1})
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
		url := fmt.Sprintf("http://%s/api/v1/datums?slot=%d", v.Nodes[0].HTTPAddress, v.Slot)
		testcluster.Eventually(t, testcluster.DefaultWait, func() error {
			body, err := httpBody(t, url)
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

func httpBody(t *testing.T, url string) (string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
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
		{"CA alone", nil, []string{"--tls-ca", "ca.pem", "leader"}, "--tls-ca needs --tls-cert and --tls-key"},
		{"cert without key", nil, []string{"--tls-cert", "c.pem", "leader"}, "cert file and key file must be set together"},
		{"slot-of without data ID", nil, []string{"slot-of"}, "accepts 1 arg"},
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

// TestRegistryctl_TLS checks the TLS flags against a cluster that requires
// mutual TLS: with the certificates the commands work, without them the
// error says so.
func TestRegistryctl_TLS(t *testing.T) {
	tc := testcluster.Certs(t, t.TempDir())
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, TLS: tc})
	meta := "--meta=" + strings.Join(c.MetaAddrs(), ",")
	var v leaderView
	if err := executeJSON(t, &v, meta, "--tls-cert", tc.CertFile, "--tls-key", tc.KeyFile, "--tls-ca", tc.CAFile, "leader"); err != nil {
		t.Fatalf("leader over TLS: %v", err)
	}
	if v.ID != c.Meta(0).ID {
		t.Errorf("leader over TLS = %q, want %s", v.ID, c.Meta(0).ID)
	}
	if _, _, err := execute(t, meta, "--timeout", "2s", "leader"); err == nil {
		t.Error("leader without TLS flags succeeded against a TLS cluster")
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
	v := g.probe(t.Context(), []healthRow{
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

// newHTTPServer serves h on loopback until the test ends and returns its
// address.
func newHTTPServer(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}
