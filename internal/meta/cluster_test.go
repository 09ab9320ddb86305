package meta_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/meta"
	"github.com/strata-registry/strata/internal/testcluster"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

func TestMeta_ElectsLeader_FailoverKeepsState_RestartCatchesUp(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3})
	leader := c.WaitLeader(t)

	for i := range 3 {
		c.StartPeer(t, fmt.Sprintf("data-%d", i), cluster.RoleData).SetSynced(true)
	}
	c.StartPeer(t, "session-0", cluster.RoleSession)
	c.WaitEpoch(t, 1)
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		return fullTable(leader.Server().State())
	})
	before := leader.Server().State()

	c.Stop(t, leader.Index)
	start := time.Now()
	next := c.WaitLeader(t)
	if next.ID == leader.ID {
		t.Fatalf("stopped leader %s still leads", leader.ID)
	}
	t.Logf("new leader %s elected %v after the old one stopped", next.ID, time.Since(start).Round(time.Millisecond))
	// Leading is not having applied: wait until the new leader's FSM has what its predecessor committed.
	var after *meta.State
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		after = next.Server().State()
		if after.Table.Epoch < before.Table.Epoch || len(after.Members) != len(before.Members) {
			return fmt.Errorf("new leader at epoch %d with %d members; the old one had epoch %d and %d members",
				after.Table.Epoch, len(after.Members), before.Table.Epoch, len(before.Members))
		}
		return nil
	})
	if after.ClusterID != before.ClusterID {
		t.Fatalf("cluster id changed")
	}

	// Writes still commit with two of three: a new member registers.
	c.StartPeer(t, "session-1", cluster.RoleSession)
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		if _, ok := next.Server().State().Members["session-1"]; !ok {
			return fmt.Errorf("session-1 not a member")
		}
		return nil
	})

	c.Restart(t, leader.Index)
	restarted := c.Meta(leader.Index)
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		got, want := restarted.Server().State(), next.Server().State()
		if got.Index < want.Index || len(got.Members) != len(want.Members) || got.Table.Epoch != want.Table.Epoch {
			return fmt.Errorf("restarted node at index %d (%d members, epoch %d), leader at %d (%d members, epoch %d)",
				got.Index, len(got.Members), got.Table.Epoch, want.Index, len(want.Members), want.Table.Epoch)
		}
		return nil
	})
}

func metaClient(t *testing.T, c *testcluster.Cluster, addr string) registryv1.MetaServiceClient {
	t.Helper()
	conn := c.Dial(t, addr)
	t.Cleanup(func() { _ = conn.Close() })
	return registryv1.NewMetaServiceClient(conn)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testcluster.DefaultWait)
	t.Cleanup(cancel)
	return ctx
}
