package data_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/meta"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/internal/testcluster"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

func TestData_ChangeNotices_ReachEverySession(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3})
	c.WaitDataSettled(t)
	a := c.StartSession(t, "session-a")
	b := c.StartSession(t, "session-b")
	k := key(9)
	a.Publish(t, pub("", k, "r1", 1, "x"))
	want := read(t, c, k).GetVersion()
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		if a.Seen(k) != want || b.Seen(k) != want {
			return fmt.Errorf("notified versions: a %d, b %d; want %d", a.Seen(k), b.Seen(k), want)
		}
		return nil
	})
}

// With one copy per slot, killing a data node loses the only copy of its
// slots: their new leaders have nothing. They must refuse reads (migrating)
// until anti-entropy has rebuilt them from the sessions, and never answer
// with an empty or partial datum.
func TestData_OnlyCopyLost_MigratingRefusesReads_RebuiltFromSessions(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, MetaConfig: func(_ int, cfg *meta.Config) { cfg.Replicas = 1 }})
	c.WaitDataSettled(t)
	s := c.StartSession(t, "session-a")
	const n = 30
	for i := range n {
		s.Publish(t, pub("", key(i), "r1", 1, "a"))
		s.Publish(t, pub("", key(i), "r2", 1, "b"))
	}
	victim := c.RouteOf(t, key(0)).Leader
	var lost []string
	for i := range n {
		if c.RouteOf(t, key(i)).Leader == victim {
			lost = append(lost, key(i))
		}
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	refused, served := 0, 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i = (i + 1) % len(lost) {
			select {
			case <-stop:
				return
			default:
			}
			r := c.RouteOf(t, lost[i])
			if r.Leader == nil || !r.Leader.Running() {
				continue
			}
			resp, err := dataClient(t, c, r.Leader).GetDatums(ctxT(t), &registryv1.GetDatumsRequest{DataInfoIds: []string{lost[i]}})
			mu.Lock()
			switch {
			case status.Code(err) == codes.Unavailable || status.Code(err) == codes.FailedPrecondition:
				refused++
			case err != nil:
				bad = append(bad, err.Error())
			case len(resp.GetDatums()) != 1 || len(resp.GetDatums()[0].GetPublishers()) != 2:
				bad = append(bad, fmt.Sprintf("%s from %s: %v", lost[i], r.Leader.ID, resp.GetDatums()))
			default:
				served++
			}
			mu.Unlock()
		}
	}()
	c.StopData(t, victim.Index, true)
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		for _, k := range lost {
			if r := c.RouteOf(t, k); r.Leader == nil || r.Leader == victim {
				return fmt.Errorf("%s still on %s", k, victim.ID)
			}
			if d := read(t, c, k); len(d.GetPublishers()) != 2 {
				return fmt.Errorf("%s not rebuilt yet: %v", k, d)
			}
		}
		return nil
	})
	close(stop)
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d bad reads (%d refused, %d served); first: %s", len(bad), refused, served, bad[0])
	}
	t.Logf("%d keys lost their only copy; reads during recovery: %d refused, %d served whole", len(lost), refused, served)
}

// A leader still rebuilding a slot holds a partial copy: a follower
// replicating from it must never report synced (it would be promoted and
// serve the partial copy). Here a session stays alive but will not answer
// anti-entropy, so the slot stays migrating: reads are refused and its
// follower stays unsynced, until the session answers.
func TestData_MigratingLeader_FollowerNeverSyncsFromIt(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 4})
	c.WaitDataSettled(t)
	s := c.StartSession(t, "session-a")
	k := key(12)
	s.Publish(t, pub("", k, "r1", 1, "a"))
	s.Publish(t, pub("", k, "r2", 1, "b"))
	r := c.RouteOf(t, k)
	s.Mute(true)
	// Lose both copies of the slot.
	c.StopData(t, r.Leader.Index, true)
	c.StopData(t, r.Followers[0].Index, true)
	var nr testcluster.Route
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		nr = c.RouteOf(t, k)
		if nr.Leader == nil || len(nr.Followers) != 1 {
			return fmt.Errorf("slot %d not yet reassigned to the survivors", nr.Slot)
		}
		// The new leader has applied the table and is rebuilding this slot.
		_, why := nr.Leader.Server().ReadyState()
		if detail, ok := why.(map[string]any); ok {
			if ids, ok := detail["slots"].([]uint32); ok && slices.Contains(ids, nr.Slot) {
				return nil
			}
		}
		return fmt.Errorf("%s is not rebuilding slot %d yet: %v", nr.Leader.ID, nr.Slot, why)
	})
	// While the session is silent: reads refused, follower unsynced. The
	// check runs over several anti-entropy retries.
	for range 20 {
		_, err := dataClient(t, c, nr.Leader).GetDatums(ctxT(t), &registryv1.GetDatumsRequest{DataInfoIds: []string{k}})
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "migrating") {
			t.Fatalf("read from a leader that is still rebuilding: %v", err)
		}
		st := c.WaitLeader(t).Server().State()
		row := st.Table.Slots[nr.Slot]
		for _, f := range row.Followers {
			if st.Sync.Synced(row.ID, f) {
				t.Fatalf("follower %s reported synced from a migrating leader", f)
			}
		}
		if row.Leader != slot.NodeID(nr.Leader.ID) {
			t.Fatalf("leadership moved from the migrating leader to %s", row.Leader)
		}
		<-time.After(50 * time.Millisecond) // spacing between samples, not a wait for a condition
	}
	s.Mute(false)
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		if d := read(t, c, k); len(d.GetPublishers()) != 2 {
			return fmt.Errorf("not rebuilt yet: %v", d)
		}
		return nil
	})
	c.WaitDataSettled(t)
}
