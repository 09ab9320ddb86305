package data_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

func TestData_KillLeader_FollowerLeads_NothingLost_VersionsIncrease(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3})
	c.WaitDataSettled(t)
	s := c.StartSession(t, "session-a")
	const n = 30
	versions := map[string]uint64{}
	for i := range n {
		s.Publish(t, pub("", key(i), "r1", 1, "a"))
		s.Publish(t, pub("", key(i), "r2", 1, "b"))
	}
	// Pick a node that leads at least one of the keys, and make sure every
	// key is on its follower before the crash.
	victim := c.RouteOf(t, key(0)).Leader
	var hit []string
	for i := range n {
		d := read(t, c, key(i))
		versions[key(i)] = d.GetVersion()
		r := c.RouteOf(t, key(i))
		if r.Leader == victim {
			hit = append(hit, key(i))
		}
		testcluster.Eventually(t, testcluster.DefaultWait, func() error {
			if f := held(t, c, r.Followers[0], key(i)); f == nil || f.GetVersion() != d.GetVersion() {
				return fmt.Errorf("%s not yet on follower %s", key(i), r.Followers[0].ID)
			}
			return nil
		})
	}
	c.StopData(t, victim.Index, true)
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		for _, k := range hit {
			if r := c.RouteOf(t, k); r.Leader == nil || r.Leader == victim {
				return fmt.Errorf("%s still led by %s", k, victim.ID)
			}
		}
		return nil
	})
	for i := range n {
		d := read(t, c, key(i))
		if d == nil || len(d.GetPublishers()) != 2 || d.GetVersion() != versions[key(i)] {
			t.Fatalf("%s after the crash: %v, want 2 publishers at version %d", key(i), d, versions[key(i)])
		}
	}
	// Writes on the new leaders get higher versions than the old leader's.
	for _, k := range hit {
		s.Publish(t, pub("", k, "r1", 2, "a2"))
		if got := read(t, c, k); got.GetVersion() <= versions[k] {
			t.Fatalf("%s: version after failover %d, want above %d", k, got.GetVersion(), versions[k])
		}
	}
}

func TestData_AddNode_SyncsThenLeads_NoPartialRead(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3})
	c.WaitDataSettled(t)
	s := c.StartSession(t, "session-a")
	const n = 40
	for i := range n {
		for _, r := range []string{"r1", "r2", "r3"} {
			s.Publish(t, pub("", key(i), r, 1, r))
		}
	}
	// Readers hammer every key from its current leader while the new node
	// joins; a read may be refused (epoch, migrating) but never partial.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	reads := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i = (i + 1) % n {
			select {
			case <-stop:
				return
			default:
			}
			r := c.RouteOf(t, key(i))
			if r.Leader == nil || !r.Leader.Running() {
				continue
			}
			resp, err := dataClient(t, c, r.Leader).GetDatums(ctxT(t), &registryv1.GetDatumsRequest{DataInfoIds: []string{key(i)}})
			if err != nil {
				if code := status.Code(err); code != codes.FailedPrecondition && code != codes.Unavailable {
					mu.Lock()
					bad = append(bad, err.Error())
					mu.Unlock()
				}
				continue
			}
			mu.Lock()
			reads++
			if len(resp.GetDatums()) != 1 || len(resp.GetDatums()[0].GetPublishers()) != 3 {
				bad = append(bad, fmt.Sprintf("%s from %s: %v", key(i), r.Leader.ID, resp.GetDatums()))
			}
			mu.Unlock()
		}
	}()
	added := c.AddData(t)
	c.WaitDataSettled(t)
	close(stop)
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d bad reads of %d, first: %s", len(bad), reads, bad[0])
	}
	if reads == 0 {
		t.Fatal("no read succeeded during the join")
	}
	led := 0
	for _, s := range c.WaitLeader(t).Server().State().Table.Slots {
		if string(s.Leader) == added.ID {
			led++
		}
	}
	if led < 256/4-1 {
		t.Fatalf("new node leads %d slots after settling", led)
	}
	for i := range n {
		if d := read(t, c, key(i)); len(d.GetPublishers()) != 3 {
			t.Fatalf("%s after the join: %v", key(i), d)
		}
	}
	t.Logf("%d reads during the join, none partial; %s leads %d slots", reads, added.ID, led)
}

func TestData_DeadSession_LeaseRemovesItsRecords_ButNotReRegisteredOnes(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3})
	c.WaitDataSettled(t)
	a := c.StartSession(t, "session-a")
	b := c.StartSession(t, "session-b")
	a.Publish(t, pub("", key(1), "only-a", 1, "x"))
	a.Publish(t, pub("", key(2), "moved", 1, "x"))
	// The client behind "moved" reconnects through session b: same
	// register id, newer version, new owner.
	b.Publish(t, pub("", key(2), "moved", 2, "y"))
	a.Kill()
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		if d := read(t, c, key(1)); d != nil {
			return fmt.Errorf("%s still has %d publishers of the dead session", key(1), len(d.GetPublishers()))
		}
		return nil
	})
	d := read(t, c, key(2))
	if d == nil || len(d.GetPublishers()) != 1 || d.GetPublishers()[0].GetSessionId() != b.Proc {
		t.Fatalf("re-registered record: %v, want it owned by %s", d, b.Proc)
	}
}

func TestData_AntiEntropy_RepairsFromSession_BothWays(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3})
	c.WaitDataSettled(t)
	s := c.StartSession(t, "session-a")
	s.Publish(t, pub("", key(5), "kept", 1, "x"))
	s.Publish(t, pub("", key(6), "dropped", 1, "x"))
	// The session holds a record the data tier never got, and no longer
	// holds one the data tier has (its unpublish was lost).
	s.Hold(pub("", key(7), "missed", 1, "x"))
	s.Forget(key(6), "dropped")
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		if d := read(t, c, key(7)); d == nil || d.GetPublishers()[0].GetRegisterId() != "missed" {
			return errors.New("the record only the session had has not reached the data tier")
		}
		if d := read(t, c, key(6)); d != nil {
			return errors.New("the record the session dropped is still on the data tier")
		}
		return nil
	})
	if d := read(t, c, key(5)); d == nil {
		t.Fatal("anti-entropy removed a record the session holds")
	}
}

func TestData_BadInput_ClearStatus_ChangesNothing(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3})
	c.WaitDataSettled(t)
	k := key(3)
	c.StartSession(t, "session-a").Publish(t, pub("", k, "r1", 1, "a"))
	before := read(t, c, k)
	r := c.RouteOf(t, k)
	client := dataClientAs(t, c, r.Leader, identity.RoleSession, "s1") // the sender of every request
	req := func(p *registryv1.Publisher) *registryv1.PublishRequest {
		return &registryv1.PublishRequest{SessionId: "s1", TableEpoch: r.TableEpoch, SlotId: r.Slot, LeaderEpoch: r.LeaderEpoch, Puts: []*registryv1.Publisher{p}}
	}
	big := pub("s1", k, "r9", 1, "")
	big.Values = [][]byte{make([]byte, 1<<20+1)}
	longID := pub("s1", strings.Repeat("d", 513)+"#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP", "r9", 1, "x")
	for _, tc := range []struct {
		name string
		req  *registryv1.PublishRequest
		code codes.Code
		msg  string
	}{
		{"oversized value", req(big), codes.ResourceExhausted, "at most 1048576"},
		{"oversized data id", req(longID), codes.ResourceExhausted, "512"},
		{"empty register id", req(pub("s1", k, "", 1, "x")), codes.InvalidArgument, "register"},
		{"malformed data info id", req(pub("s1", "no-separators", "r9", 1, "x")), codes.InvalidArgument, "data"},
		{"publisher of another session", req(pub("s2", k, "r9", 1, "x")), codes.InvalidArgument, "owned by session"},
		{"key of another slot", req(pub("s1", key(4), "r9", 1, "x")), codes.InvalidArgument, "belongs to slot"},
		{"unknown slot", &registryv1.PublishRequest{SessionId: "s1", TableEpoch: r.TableEpoch, SlotId: 9999, LeaderEpoch: 1, Puts: []*registryv1.Publisher{pub("s1", k, "r9", 1, "x")}}, codes.InvalidArgument, "slot 9999 out of range"},
		{"too large a publisher", req(func() *registryv1.Publisher {
			p := pub("s1", k, "r9", 1, "")
			for range 5 {
				p.Values = append(p.Values, make([]byte, 1<<20))
			}
			return p
		}()), codes.ResourceExhausted, "at most 4194304"},
		{"empty batch", &registryv1.PublishRequest{SessionId: "s1", TableEpoch: r.TableEpoch, SlotId: r.Slot, LeaderEpoch: r.LeaderEpoch}, codes.InvalidArgument, "empty batch"},
		{"no session", &registryv1.PublishRequest{TableEpoch: r.TableEpoch, SlotId: r.Slot, LeaderEpoch: r.LeaderEpoch, Puts: []*registryv1.Publisher{pub("", k, "r9", 1, "x")}}, codes.InvalidArgument, "session id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.Publish(ctxT(t), tc.req)
			st, _ := status.FromError(err)
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.msg) {
				t.Fatalf("got %v %q, want %v containing %q", st.Code(), st.Message(), tc.code, tc.msg)
			}
		})
	}
	if _, err := client.GetDatums(ctxT(t), &registryv1.GetDatumsRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("GetDatums without keys: %v", err)
	}
	if _, err := client.GetDatums(ctxT(t), &registryv1.GetDatumsRequest{DataInfoIds: []string{"bad key"}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("GetDatums with a malformed key: %v", err)
	}
	if after := read(t, c, k); after.GetVersion() != before.GetVersion() || len(after.GetPublishers()) != 1 {
		t.Fatalf("bad requests changed the datum: %v -> %v", before, after)
	}
}

// A data node that crashes and comes straight back under its id is a new
// process with an empty store. It must not keep leading its old slots at
// their old leader epochs (it would hand out versions it already used and
// serve empty data): meta moves its slots first, and nothing is lost.
func TestData_CrashAndQuickRestart_SlotsMoveFirst_NothingLost(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3})
	c.WaitDataSettled(t)
	s := c.StartSession(t, "session-a")
	const n = 30
	// Several updates per key: a restarted leader that kept its leader
	// epoch would count versions again from below where they were.
	for i := range n {
		for v := uint64(1); v <= 5; v++ {
			s.Publish(t, pub("", key(i), "r1", v, fmt.Sprintf("v%d", v)))
		}
	}
	victim := c.RouteOf(t, key(0)).Leader
	before := map[string]uint64{}
	for i := range n {
		before[key(i)] = read(t, c, key(i)).GetVersion()
	}
	c.WaitDataSettled(t) // every follower caught up before the crash
	c.StopData(t, victim.Index, true)
	c.RestartData(t, victim.Index)
	c.WaitDataSettled(t)
	for i := range n {
		d := read(t, c, key(i))
		if d == nil || len(d.GetPublishers()) != 1 || d.GetVersion() < before[key(i)] {
			t.Fatalf("%s after %s restarted: %v, want its publisher at version >= %d", key(i), victim.ID, d, before[key(i)])
		}
		s.Publish(t, pub("", key(i), "r1", 6, "v6"))
		if got := read(t, c, key(i)).GetVersion(); got <= before[key(i)] {
			t.Fatalf("%s: version %d after the restart, not above %d", key(i), got, before[key(i)])
		}
	}
}

// A data node stopped gracefully (SIGTERM) leaves the pool first and keeps
// serving until meta has given its leaderships to their followers: only
// then does it stop. Before, it stopped serving (up to the 2 s gRPC
// stop) and only then left, so its keys' writes stalled ~2.3 s in every
// graceful restart the chaos runs made.
func TestData_GracefulStop_LeavesAndDrainsLeadershipsBeforeItStops(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 3})
	c.WaitDataSettled(t)
	s := c.StartSession(t, "session-a")
	s.Publish(t, pub("", key(0), "r1", 1, "v1"))
	victim := c.RouteOf(t, key(0)).Leader
	before := c.WaitLeader(t).Server().State().Table
	c.StopData(t, victim.Index, false)

	log := testcluster.LogOf(t, victim.Dir)
	if !strings.Contains(log, "left the pool and drained") || strings.Contains(log, "drain ended with slots still led here") {
		t.Fatalf("%s did not drain its leaderships before it stopped; its log:\n%s", victim.ID, log)
	}
	// The table that let it go gives every slot it led to another node,
	// under a new leader epoch.
	after := c.WaitLeader(t).Server().State().Table
	for _, row := range before.Slots {
		if string(row.Leader) != victim.ID {
			continue
		}
		if got := after.Slots[row.ID]; got.Leader == row.Leader || got.Leader == "" || got.LeaderEpoch <= row.LeaderEpoch {
			t.Fatalf("slot %d after %s drained: leader %q epoch %d (was %q epoch %d)", row.ID, victim.ID, got.Leader, got.LeaderEpoch, row.Leader, row.LeaderEpoch)
		}
	}
	if d := read(t, c, key(0)); d == nil || len(d.GetPublishers()) != 1 {
		t.Fatalf("%s after the drain: %v", key(0), d)
	}
}

// A slot larger than grpc-go's default 4 MiB message replicates (in
// chunks) and reads whole.
func TestData_SlotOver4MiB_ReadsAndReplicates(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3})
	c.WaitDataSettled(t)
	s := c.StartSession(t, "session-a")
	k := key(11)
	big := strings.Repeat("x", 1<<20-64)
	for i := range 6 {
		s.Publish(t, pub("", k, fmt.Sprintf("r%d", i), 1, big))
	}
	if d := read(t, c, k); len(d.GetPublishers()) != 6 {
		t.Fatalf("read %d publishers, want 6", len(d.GetPublishers()))
	}
	// Replace the follower: the new one must take the whole slot by snapshot.
	r := c.RouteOf(t, k)
	c.StopData(t, r.Followers[0].Index, true)
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		r := c.RouteOf(t, k)
		if len(r.Followers) != 1 {
			return fmt.Errorf("slot %d has %d live followers", r.Slot, len(r.Followers))
		}
		if f := held(t, c, r.Followers[0], k); f == nil || len(f.GetPublishers()) != 6 {
			return fmt.Errorf("new follower %s holds %v", r.Followers[0].ID, f)
		}
		return nil
	})
}
