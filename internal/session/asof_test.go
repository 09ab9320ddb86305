package session_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/strata-registry/strata/internal/session"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// TestSession_SlotPublishers_AsOf_CoversEveryEarlierStamp: a slot leader
// deletes a record of a session that the session's list (SlotPublishers)
// lacks and that is stamped no later than the list's as_of, so every
// publication stamped by then must be in the list. Registrations here
// wait for their turn at the connection's rate, which on the old code
// came between the stamp and the store: a list read meanwhile lacked
// publications stamped before its as_of, and in a storm the leader
// deleted live records (and its tombstones refused every re-send).
func TestSession_SlotPublishers_AsOf_CoversEveryEarlierStamp(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1, SessionConfig: func(_ int, cfg *session.Config) {
		cfg.RegisterRate, cfg.RegisterBurst = 300, 5
	}})
	c.WaitDataSettled(t)
	n := c.Session(0)
	cl := c.Connect(t, n, "stamper", "z1", true)
	conn := c.DialAs(t, n.Server().GRPCAddr(), identity.RoleData, c.Data(0).ID)
	defer conn.Close()
	sync_ := registryv1.NewSessionSyncServiceClient(conn)
	slotID := c.RouteOf(t, key).Slot

	type snapshot struct {
		asOf int64
		held map[string]bool
	}
	var snaps []snapshot
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			resp, err := sync_.SlotPublishers(ctx, &registryv1.SessionSlotPublishersRequest{SlotId: slotID})
			if err != nil {
				if ctx.Err() == nil {
					t.Error(err)
				}
				return
			}
			s := snapshot{asOf: resp.GetAsOf(), held: map[string]bool{}}
			for _, p := range resp.GetPublishers() {
				s.held[p.GetRegisterId()] = true
			}
			snaps = append(snaps, s)
		}
	})
	var pubs sync.WaitGroup
	for i := range 200 {
		pubs.Go(func() {
			if _, err := cl.Publish(svc, fmt.Sprintf("r-%03d", i), 1, "10.0.0.1:80"); err != nil {
				t.Error(err)
			}
		})
	}
	pubs.Wait()
	stop()
	wg.Wait()
	final, err := sync_.SlotPublishers(context.Background(), &registryv1.SessionSlotPublishersRequest{SlotId: slotID})
	if err != nil {
		t.Fatal(err)
	}
	if len(final.GetPublishers()) != 200 {
		t.Fatalf("the session holds %d of 200", len(final.GetPublishers()))
	}
	for _, s := range snaps {
		for _, p := range final.GetPublishers() {
			if p.GetRegisterTimestamp() <= s.asOf && !s.held[p.GetRegisterId()] {
				t.Fatalf("a list as of %d lacks %s, stamped %d (%d ns before it): a leader would delete it",
					s.asOf, p.GetRegisterId(), p.GetRegisterTimestamp(), s.asOf-p.GetRegisterTimestamp())
			}
		}
	}
	t.Logf("%d lists checked", len(snaps))
}
