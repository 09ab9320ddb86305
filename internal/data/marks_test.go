package data_test

import (
	"fmt"
	"testing"

	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// A leader attaches a key's marks to its datum and bumps its version when
// they change; a follower that takes the slot over serves the marks at a
// version above every one the old leader handed out, although the bump
// was never replicated (sessions that fetched it would otherwise ignore
// the new leader's older version and the marks' change for good).
func TestData_InstanceMarks_BumpTheVersion_SurviveAFailover(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 2})
	c.WaitDataSettled(t)
	s := c.StartSession(t, "session-a")
	k := record.DataInfoID("com.example.marked", "", "")
	s.Publish(t, pub("", k, "r1", 1, `{"v":1,"addr":"10.0.0.7:80"}`))
	before := read(t, c, k)
	if len(before.GetInstanceStates()) != 0 {
		t.Fatalf("marks before any: %v", before.GetInstanceStates())
	}

	conn := c.DialAs(t, c.MetaAddrs()[0], identity.RoleAdmin, testcluster.AdminName)
	t.Cleanup(func() { _ = conn.Close() })
	if _, err := registryv1.NewMetaServiceClient(conn).SetInstanceState(ctxT(t), &registryv1.SetInstanceStateRequest{
		DataInfoId: k, Addr: "10.0.0.7:80", State: "disabled"}); err != nil {
		t.Fatal(err)
	}
	var marked *registryv1.Datum
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		marked = read(t, c, k)
		if m := marked.GetInstanceStates(); len(m) != 1 || m[0].GetState() != "disabled" || marked.GetVersion() <= before.GetVersion() {
			return fmt.Errorf("leader serves version %d (had %d) with marks %v", marked.GetVersion(), before.GetVersion(), m)
		}
		return nil
	})
	if s.Seen(k) < marked.GetVersion() {
		testcluster.Eventually(t, testcluster.DefaultWait, func() error {
			if v := s.Seen(k); v < marked.GetVersion() {
				return fmt.Errorf("the session was notified of version %d, want %d", v, marked.GetVersion())
			}
			return nil
		})
	}

	// The leader dies; its follower, which never saw the bump, takes over.
	leader := c.RouteOf(t, k).Leader
	for i := range 2 {
		if c.Data(i) == leader {
			c.StopData(t, i, true)
		}
	}
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		if r := c.RouteOf(t, k); r.Leader == nil || r.Leader == leader {
			return fmt.Errorf("slot %d still led by %v", r.Slot, r.Leader)
		}
		after := read(t, c, k)
		if m := after.GetInstanceStates(); len(m) != 1 || m[0].GetState() != "disabled" || after.GetVersion() <= marked.GetVersion() {
			return fmt.Errorf("new leader serves version %d (the old one's was %d) with marks %v", after.GetVersion(), marked.GetVersion(), m)
		}
		return nil
	})
}
