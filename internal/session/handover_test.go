package session_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/data"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// readAt reads key from data node n as the operator: the datum, or the
// node's refusal.
func readAt(t *testing.T, c *testcluster.Cluster, n *testcluster.DataNode, key string) (*registryv1.Datum, error) {
	t.Helper()
	conn := c.DialAs(t, n.Server().GRPCAddr(), identity.RoleAdmin, testcluster.AdminName)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := registryv1.NewDataServiceClient(conn).GetDatums(ctx, &registryv1.GetDatumsRequest{DataInfoIds: []string{key}})
	if err != nil {
		return nil, err
	}
	return resp.GetDatums()[0], nil
}

func valueOf(d *registryv1.Datum) string {
	if len(d.GetPublishers()) != 1 || len(d.GetPublishers()[0].GetValues()) != 1 {
		return fmt.Sprintf("%d publishers", len(d.GetPublishers()))
	}
	return string(d.GetPublishers()[0].GetValues()[0])
}

// The stale handover the fault runs found, made deterministic: a slot
// moves (planned, to a caught-up follower) while the old leader and a
// session still route by the old table, so the session's next write lands
// at the old leader and is acknowledged there. The new leader must not
// serve the value it replicated before that write: it reads only once
// every live session is on its table with older writes settled (the
// handover barrier) and it has compared itself with them. Without the
// barrier it serves the previous value, at its own higher version, until
// the next anti-entropy round (an hour here, 30 s by default).
func TestHandover_WriteAckedByTheOldLeaderAfterTheMove_NewLeaderNeverServesTheOlderValue(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, MetaLinks: true,
		DataConfig: func(_ int, cfg *data.Config) { cfg.AntiEntropyInterval = time.Hour }})
	s := c.AddSession(t)
	c.WaitDataSettled(t)
	old := c.Data(0)
	pubc := c.Connect(t, s, "publisher", "z1", true)
	// Many services, so some land in slots that move to the new node.
	const services = 64
	name := func(i int) string { return fmt.Sprintf("com.example.Svc%d", i) }
	for i := range services {
		acked(t)(pubc.Publish(name(i), "p", 1, "v1"))
	}
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		for i := range services {
			d, err := readAt(t, c, old, record.DataInfoID(name(i), "", ""))
			if err != nil || valueOf(d) != "v1" {
				return fmt.Errorf("%s on %s: %v, %v", name(i), old.ID, valueOf(d), err)
			}
		}
		return nil
	})

	// The old leader and the session stop hearing from meta; the new node
	// joins, catches up as a follower and is promoted.
	old.MetaLink.Pause()
	s.MetaLink.Pause()
	healed := false
	heal := func() {
		if !healed {
			healed = true
			old.MetaLink.Heal()
			s.MetaLink.Heal()
		}
	}
	defer heal()
	nu := c.AddData(t)
	var moved string
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		for i := range services {
			k := record.DataInfoID(name(i), "", "")
			r := c.RouteOf(t, k)
			if r.Leader == nil || r.Leader.ID != nu.ID || nu.Server().TableEpoch() < r.TableEpoch {
				continue
			}
			moved = name(i)
			return nil
		}
		return fmt.Errorf("no slot has moved to %s yet", nu.ID)
	})
	k := record.DataInfoID(moved, "", "")
	if e := s.Server().TableEpoch(); e >= c.RouteOf(t, k).TableEpoch {
		t.Fatalf("the session saw table %d through a paused link", e)
	}
	// Let the new leader finish what it does on taking over: it serves k
	// (a caught-up follower, or rebuilt by a round), or a round after the
	// move has ended, complete or not (with the barrier it cannot
	// complete while the session routes by the old table).
	base := rounds(t, nu)
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		if _, err := readAt(t, c, nu, k); err == nil || rounds(t, nu) > base {
			return nil
		}
		return fmt.Errorf("%s neither serves %s nor has ended an anti-entropy round", nu.ID, k)
	})

	// The session still routes by the old table: the old leader takes the
	// write and acknowledges it.
	acked(t)(pubc.Publish(moved, "p", 2, "v2"))
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		d, err := readAt(t, c, old, k)
		if err != nil || valueOf(d) != "v2" {
			return fmt.Errorf("old leader: %v, %v", valueOf(d), err)
		}
		return nil
	})

	// The new leader may refuse, but never answers with v1.
	check := func() (*registryv1.Datum, error) {
		d, err := readAt(t, c, nu, k)
		if err != nil {
			if status.Code(err) != codes.Unavailable && status.Code(err) != codes.FailedPrecondition {
				t.Fatalf("new leader: %v", err)
			}
			return nil, err
		}
		if got := valueOf(d); got != "v2" {
			t.Fatalf("new leader %s served %q at version %d after the old leader acknowledged v2: a stale handover", nu.ID, got, d.GetVersion())
		}
		return d, nil
	}
	for range 10 {
		if _, err := check(); err == nil {
			break
		}
		<-time.After(50 * time.Millisecond) // spacing between samples over several anti-entropy retries
	}
	// Once the session hears the new table it passes the barrier, and the
	// new leader repairs itself from it and serves v2.
	heal()
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		_, err := check()
		return err
	})
}

// rounds is how many anti-entropy rounds data node n has ended, complete
// or not.
func rounds(t *testing.T, n *testcluster.DataNode) float64 {
	t.Helper()
	mfs, err := n.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		switch mf.GetName() {
		case "strata_data_antientropy_rounds_total", "strata_data_antientropy_rounds_incomplete_total":
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

// The barrier's bad input: a caller ahead of the session (a table the
// session never gets, or a bogus epoch) is refused with Unavailable after
// at most the session's call timeout, whatever the caller's deadline; a
// caller at the session's epoch gets its digests.
func TestHandover_BarrierAheadOfTheSession_RefusedWithinTheCallTimeout(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1})
	s := c.AddSession(t)
	c.WaitDataSettled(t)
	conn := c.DialAs(t, s.Server().GRPCAddr(), identity.RoleData, c.Data(0).ID)
	defer conn.Close()
	sync := registryv1.NewSessionSyncServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cur := s.Server().TableEpoch()
	_, err := sync.SlotDigests(ctx, &registryv1.SessionSlotDigestsRequest{SlotIds: []uint32{0}, TableEpoch: cur + 1000})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "behind the caller's") {
		t.Fatalf("barrier ahead of the session: %v; want Unavailable naming both epochs", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the refusal waited out the caller's minute, not the session's call timeout")
	}
	resp, err := sync.SlotDigests(ctx, &registryv1.SessionSlotDigestsRequest{SlotIds: []uint32{0}, TableEpoch: cur})
	if err != nil || len(resp.GetDigests()) != 1 {
		t.Fatalf("barrier at the session's epoch: %v, %v", resp, err)
	}
}
