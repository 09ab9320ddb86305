package data_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/strata-registry/strata/internal/data"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testcluster.DefaultWait)
	t.Cleanup(cancel)
	return ctx
}

// dataClient calls data node n as the test operator (it may read).
func dataClient(t *testing.T, c *testcluster.Cluster, n *testcluster.DataNode) registryv1.DataServiceClient {
	t.Helper()
	return dataClientAs(t, c, n, identity.RoleAdmin, testcluster.AdminName)
}

// dataClientAs calls data node n as role's name.
func dataClientAs(t *testing.T, c *testcluster.Cluster, n *testcluster.DataNode, role identity.Role, name string) registryv1.DataServiceClient {
	t.Helper()
	conn := c.DialAs(t, n.Server().GRPCAddr(), role, name)
	t.Cleanup(func() { _ = conn.Close() })
	return registryv1.NewDataServiceClient(conn)
}

func pub(session, key, reg string, version uint64, value string) *registryv1.Publisher {
	return &registryv1.Publisher{RegisterId: reg, DataInfoId: key, ClientVersion: version, RegisterTimestamp: int64(version),
		Values: [][]byte{[]byte(value)}, SessionId: session, ConnId: "conn-1", Zone: "z1"}
}

// read returns the datum of key from its current leader, retrying while
// the slot is migrating or the table moves.
func read(t *testing.T, c *testcluster.Cluster, key string) *registryv1.Datum {
	t.Helper()
	var d *registryv1.Datum
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		r := c.RouteOf(t, key)
		if r.Leader == nil {
			return fmt.Errorf("slot %d has no live leader", r.Slot)
		}
		resp, err := dataClient(t, c, r.Leader).GetDatums(ctxT(t), &registryv1.GetDatumsRequest{DataInfoIds: []string{key}})
		if err != nil {
			return err
		}
		if len(resp.GetDatums()) != 1 {
			return fmt.Errorf("GetDatums answered %d datums for one key", len(resp.GetDatums()))
		}
		d = resp.GetDatums()[0]
		if len(d.GetPublishers()) == 0 {
			d = nil // no publishers: the test's "nothing there"
		}
		return nil
	})
	return d
}

// held returns a node's local copy of key through its admin API (followers
// included), or nil.
func held(t *testing.T, c *testcluster.Cluster, n *testcluster.DataNode, key string) *registryv1.Datum {
	t.Helper()
	resp, err := c.HTTP(t, true).Get(c.URL(n.Server().HTTPAddr(), "/api/v1/datums?data_info_id="+url.QueryEscape(key)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	b, _ := io.ReadAll(resp.Body)
	var d struct {
		DataInfoID string `json:"data_info_id"`
		Version    uint64 `json:"version"`
		Publishers []struct {
			RegisterID string `json:"register_id"`
		} `json:"publishers"`
	}
	if err := json.Unmarshal(b, &d); err != nil || d.DataInfoID == "" {
		return nil
	}
	out := &registryv1.Datum{DataInfoId: d.DataInfoID, Version: d.Version}
	for _, p := range d.Publishers {
		out.Publishers = append(out.Publishers, &registryv1.Publisher{RegisterId: p.RegisterID})
	}
	return out
}

func key(i int) string { return record.DataInfoID(fmt.Sprintf("com.example.svc%d", i), "", "") }

func TestData_WritesOnLeader_ReadableThere_PresentOnFollower(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3})
	c.WaitDataSettled(t)
	s := c.StartSession(t, "session-a")
	const n = 40
	for i := range n {
		s.Publish(t, pub("", key(i), "r1", 1, "a"))
		// A subscriber's read (half the keys): their changes come with
		// their datums inline from then on, the others' do not.
		if i%2 == 0 {
			s.Subscribe(t, key(i))
		}
		s.Publish(t, pub("", key(i), "r2", 1, "b"))
	}
	for i := range n {
		d := read(t, c, key(i))
		if d == nil || len(d.GetPublishers()) != 2 {
			t.Fatalf("%s on its leader: %v", key(i), d)
		}
		// A move in progress adds a follower for a moment: wait for the
		// table to settle on one.
		var r testcluster.Route
		testcluster.Eventually(t, testcluster.DefaultWait, func() error {
			if r = c.RouteOf(t, key(i)); len(r.Followers) != 1 {
				return fmt.Errorf("%s: %d followers, want 1", key(i), len(r.Followers))
			}
			return nil
		})
		testcluster.Eventually(t, testcluster.DefaultWait, func() error {
			f := held(t, c, r.Followers[0], key(i))
			if f == nil || f.GetVersion() != d.GetVersion() || len(f.GetPublishers()) != 2 {
				return fmt.Errorf("%s on follower %s: %v, leader has version %d", key(i), r.Followers[0].ID, f, d.GetVersion())
			}
			return nil
		})
		if i%2 == 1 {
			// No subscriber read it: notices only, not a datum a
			// session would throw away.
			if in := s.Inline(key(i)); in != nil {
				t.Fatalf("%s, which the session never read, came inline: %v", key(i), in)
			}
			continue
		}
		// Small datums of the session's interest ride along with their
		// change notice, whole.
		testcluster.Eventually(t, testcluster.DefaultWait, func() error {
			in := s.Inline(key(i))
			if in.GetVersion() != d.GetVersion() || len(in.GetPublishers()) != 2 {
				return fmt.Errorf("%s: notice carried %v, the leader has version %d", key(i), in, d.GetVersion())
			}
			return nil
		})
	}
}

func TestData_StaleEpoch_RefusedWithCurrent_ChangesNothing(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3})
	c.WaitDataSettled(t)
	k := key(1)
	c.StartSession(t, "session-a").Publish(t, pub("", k, "r1", 1, "a"))
	before := read(t, c, k)
	r := c.RouteOf(t, k)
	if e := r.Leader.Server().TableEpoch(); e != r.TableEpoch {
		t.Fatalf("settled cluster: leader %s at epoch %d, meta at %d", r.Leader.ID, e, r.TableEpoch)
	}
	client := dataClientAs(t, c, r.Leader, identity.RoleSession, "s1")

	for name, req := range map[string]*registryv1.PublishRequest{
		"old table epoch":  {SessionId: "s1", TableEpoch: r.TableEpoch - 1, SlotId: r.Slot, LeaderEpoch: r.LeaderEpoch, Puts: []*registryv1.Publisher{pub("s1", k, "r9", 1, "x")}},
		"old leader epoch": {SessionId: "s1", TableEpoch: r.TableEpoch, SlotId: r.Slot, LeaderEpoch: r.LeaderEpoch - 1, Puts: []*registryv1.Publisher{pub("s1", k, "r9", 1, "x")}},
	} {
		_, err := client.Publish(ctxT(t), req)
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("%s: got %v, want FailedPrecondition", name, err)
		}
		em, ok := data.EpochOf(err)
		if !ok || em.GetTableEpoch() != r.TableEpoch || em.GetLeaderEpoch() != r.LeaderEpoch || em.GetLeader() != r.Leader.ID {
			t.Fatalf("%s: mismatch detail %v, want table %d leader %s epoch %d", name, em, r.TableEpoch, r.Leader.ID, r.LeaderEpoch)
		}
	}
	// A follower refuses writes too, naming the leader.
	_, err := dataClientAs(t, c, r.Followers[0], identity.RoleSession, "s1").Publish(ctxT(t), &registryv1.PublishRequest{
		SessionId: "s1", TableEpoch: r.TableEpoch, SlotId: r.Slot, LeaderEpoch: r.LeaderEpoch, Puts: []*registryv1.Publisher{pub("s1", k, "r9", 1, "x")},
	})
	if em, ok := data.EpochOf(err); !ok || em.GetLeader() != r.Leader.ID {
		t.Fatalf("follower write: %v", err)
	}
	if after := read(t, c, k); !proto.Equal(before, after) {
		t.Fatalf("refused writes changed the datum:\nbefore %v\nafter  %v", before, after)
	}
}

// TestData_PublishSlots_EachBatchOnItsOwn_BadCallsChangeNothing: one call
// carries a session's batches for several slots the node leads; each is
// applied or refused on its own (a stale leader epoch refuses only its
// batch), and a malformed call (no batches, a slot twice, two sessions'
// batches, a bad publisher in any batch, more ops in all than a batch may
// hold) is refused whole, with nothing applied.
func TestData_PublishSlots_EachBatchOnItsOwn_BadCallsChangeNothing(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1})
	c.WaitDataSettled(t)
	sess := c.StartSession(t, "session-a")
	k0 := key(0)
	r0 := c.RouteOf(t, k0)
	k1, r1 := "", testcluster.Route{}
	for i := 1; k1 == ""; i++ {
		if r := c.RouteOf(t, key(i)); r.Slot != r0.Slot {
			k1, r1 = key(i), r
		}
	}
	conn := c.DialAs(t, r0.Leader.Server().GRPCAddr(), identity.RoleSession, "session-a")
	t.Cleanup(func() { _ = conn.Close() })
	dc := registryv1.NewDataServiceClient(conn)
	batch := func(r testcluster.Route, ps ...*registryv1.Publisher) *registryv1.PublishRequest {
		return &registryv1.PublishRequest{SessionId: sess.Proc, TableEpoch: r.TableEpoch, SlotId: r.Slot, LeaderEpoch: r.LeaderEpoch, Puts: ps}
	}
	call := func(bs ...*registryv1.PublishRequest) (*registryv1.PublishSlotsResponse, error) {
		return dc.PublishSlots(ctxT(t), &registryv1.PublishSlotsRequest{Batches: bs})
	}
	valueAt := func(k string) string {
		d := read(t, c, k)
		if len(d.GetPublishers()) == 0 {
			return ""
		}
		return string(d.GetPublishers()[0].GetValues()[0])
	}

	// The session holds what it writes (anti-entropy compares with it).
	held := func(p *registryv1.Publisher) *registryv1.Publisher {
		sess.Hold(proto.Clone(p).(*registryv1.Publisher))
		return p
	}
	resp, err := call(batch(r0, held(pub(sess.Proc, k0, "r", 1, "a1"))), batch(r1, held(pub(sess.Proc, k1, "r", 1, "b1"))))
	if err != nil || len(resp.GetResults()) != 2 || resp.GetResults()[0].GetCode() != 0 || resp.GetResults()[1].GetCode() != 0 {
		t.Fatalf("two slots' batches: %v, %v; want both applied", resp, err)
	}
	if v0, v1 := valueAt(k0), valueAt(k1); v0 != "a1" || v1 != "b1" {
		t.Fatalf("after the call: %q, %q; want a1, b1", v0, v1)
	}

	stale := batch(r0, pub(sess.Proc, k0, "r", 2, "a2"))
	stale.LeaderEpoch++
	resp, err = call(stale, batch(r1, held(pub(sess.Proc, k1, "r", 2, "b2"))))
	if err != nil || codes.Code(resp.GetResults()[0].GetCode()) != codes.FailedPrecondition || resp.GetResults()[1].GetCode() != 0 {
		t.Fatalf("a stale batch beside a good one: %v, %v; want the first refused (FailedPrecondition), the second applied", resp, err)
	}
	if v0, v1 := valueAt(k0), valueAt(k1); v0 != "a1" || v1 != "b2" {
		t.Fatalf("after the call: %q, %q; want a1 (refused), b2", v0, v1)
	}

	other := batch(r1, pub("session-b@1", k1, "r", 3, "b3"))
	other.SessionId = "session-b@1"
	bad := pub(sess.Proc, k1, "", 3, "b3") // no register id
	many := func(r testcluster.Route, k string, n int) *registryv1.PublishRequest {
		b := batch(r)
		for i := range n {
			b.Puts = append(b.Puts, pub(sess.Proc, k, fmt.Sprintf("m%d", i), 3, "m"))
		}
		return b
	}
	for _, tc := range []struct {
		name string
		bs   []*registryv1.PublishRequest
		code codes.Code
		says string
	}{
		{"no batches", nil, codes.InvalidArgument, "no batches"},
		{"one slot twice", []*registryv1.PublishRequest{batch(r0, pub(sess.Proc, k0, "r", 3, "a3")), batch(r0, pub(sess.Proc, k0, "s", 3, "a3"))}, codes.InvalidArgument, "second batch"},
		{"two sessions' batches", []*registryv1.PublishRequest{batch(r0, pub(sess.Proc, k0, "r", 3, "a3")), other}, codes.InvalidArgument, "one session per call"},
		{"a bad publisher in the second batch", []*registryv1.PublishRequest{batch(r0, pub(sess.Proc, k0, "r", 3, "a3")), batch(r1, bad)}, codes.InvalidArgument, "batch 1"},
		{"more ops in all than a batch may hold", []*registryv1.PublishRequest{many(r0, k0, 600), many(r1, k1, 600)}, codes.ResourceExhausted, "one call's batches"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := call(tc.bs...)
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %v, want %v saying %q", err, tc.code, tc.says)
			}
		})
	}
	if v0, v1 := valueAt(k0), valueAt(k1); v0 != "a1" || v1 != "b2" {
		t.Fatalf("refused calls changed the datums: %q, %q; want a1, b2", v0, v1)
	}
}
