package session_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/session"
	"github.com/strata-registry/strata/internal/testcluster"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// TestSession_ConnectionBalance_MovesClientsToTheEmptySession: all clients
// on one session, none on the other; the loaded one redirects clients
// (naming the other session) until both hold the same, then stops.
//
// Balance rounds may run while the clients are still connecting, so a
// round can act on counts that are already old (A redirects for the load
// it had, B's report lags) and move one too many, which the other session
// then moves back: the test follows every redirect, from either side, and
// asks for what must hold: each names the other session, the sessions end
// up even, and stay so.
func TestSession_ConnectionBalance_MovesClientsToTheEmptySession(t *testing.T) {
	const clients = 8
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 1, Session: 2, SessionConfig: func(_ int, cfg *session.Config) {
		cfg.BalanceInterval = 4 * cfg.HeartbeatInterval
	}})
	a, b := c.Session(0), c.Session(1)
	other := map[*testcluster.SessionNode]*testcluster.SessionNode{a: b, b: a}
	type placed struct {
		cl *testcluster.Client
		on *testcluster.SessionNode
	}
	conns := map[string]placed{}
	for i := range clients {
		id := fmt.Sprintf("client-%d", i)
		conns[id] = placed{c.Connect(t, a, id, "z1", true), a}
	}
	metaConn := c.Dial(t, c.Meta(0).Server().GRPCAddr())
	t.Cleanup(func() { _ = metaConn.Close() })
	// Follow redirects as a client does: connect where told, then close.
	moved := 0
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		for id, p := range conns {
			select {
			case r := <-p.cl.Redirects:
				to := other[p.on]
				if len(r.GetSessions()) == 0 || r.GetSessions()[0] != to.Server().GRPCAddr() {
					t.Fatalf("%s on %s redirected to %v, want %s first", id, p.on.ID, r.GetSessions(), to.Server().GRPCAddr())
				}
				conns[id] = placed{c.Connect(t, to, id, "z1", true), to}
				p.cl.Close()
				moved++
			default:
			}
		}
		na, nb := gauge(t, a, "strata_session_connections"), gauge(t, b, "strata_session_connections")
		if na != clients/2 || nb != clients/2 {
			return fmt.Errorf("connections %v / %v, want %d each (%d moved)", na, nb, clients/2, moved)
		}
		// Rounds judge by the counts meta last heard (a heartbeat behind): wait until meta has them even too.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		resp, err := registryv1.NewMetaServiceClient(metaConn).ListSessions(ctx, &registryv1.ListSessionsRequest{})
		if err != nil {
			return err
		}
		if len(resp.GetSessions()) != 2 {
			return fmt.Errorf("meta lists %d sessions, want 2", len(resp.GetSessions()))
		}
		for _, si := range resp.GetSessions() {
			if si.GetClientCount() != clients/2 {
				return fmt.Errorf("meta counts %d clients on %s, want %d", si.GetClientCount(), si.GetNode().GetId(), clients/2)
			}
		}
		return nil
	})
	if moved < clients/2 {
		t.Fatalf("%d clients moved to balance %d, want at least %d", moved, clients, clients/2)
	}
	// Balanced: three more rounds on each session redirect nobody.
	redirects := metricValue(t, a, "strata_session_redirects_total") + metricValue(t, b, "strata_session_redirects_total")
	ra, rb := metricValue(t, a, "strata_session_balance_rounds_total"), metricValue(t, b, "strata_session_balance_rounds_total")
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		if metricValue(t, a, "strata_session_balance_rounds_total") < ra+3 || metricValue(t, b, "strata_session_balance_rounds_total") < rb+3 {
			return fmt.Errorf("waiting for three more balance rounds")
		}
		return nil
	})
	if now := metricValue(t, a, "strata_session_redirects_total") + metricValue(t, b, "strata_session_redirects_total"); now != redirects {
		t.Fatalf("redirects went from %v to %v once balanced", redirects, now)
	}
}

// TestSession_ClientMovesBetweenLiveSessions_PublicationOutlivesOldGrace:
// a client leaves session A (which stays up) for B and re-registers there;
// when A's disconnect grace for it ends, A's removal must not delete what
// the client now holds through B.
func TestSession_ClientMovesBetweenLiveSessions_PublicationOutlivesOldGrace(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, Session: 2})
	c.WaitDataSettled(t)
	a, b := c.Session(0), c.Session(1)
	mover := c.Connect(t, a, "mover", "z1", true)
	acked(t)(mover.Publish(svc, "p1", 1, "v"))
	sub := c.Connect(t, b, "subscriber", "z1", true)
	acked(t)(sub.Subscribe(svc, "s", registryv1.Scope_SCOPE_GLOBAL))
	drain(t, sub, func(*registryv1.Push) error { return nil }, func(p *registryv1.Push) bool { return len(p.GetValues()) == 1 })

	mover.Close()
	again := c.Connect(t, b, "mover", "z1", true)
	acked(t)(again.Publish(svc, "p1", 1, "v"))
	// A's grace for the client ends: it drops the publication and forwards
	// its (conditional) removal.
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		if p, q := gauge(t, a, "strata_session_publishers"), gauge(t, a, "strata_session_forward_backlog"); p != 0 || q != 0 {
			return fmt.Errorf("session A holds %v publishers, %v writes queued", p, q)
		}
		return nil
	})
	// A new subscriber (on A, fetching from the data tier) sees it, and the
	// old one never saw it vanish.
	late := c.Connect(t, a, "late-subscriber", "z1", true)
	acked(t)(late.Subscribe(svc, "s2", registryv1.Scope_SCOPE_GLOBAL))
	if p := nextPush(t, late, key); len(p.GetValues()) != 1 {
		t.Fatalf("after A's grace ended the data tier has %v, want the moved publication", values(p))
	}
	for {
		select {
		case p := <-sub.Pushes:
			if len(p.GetValues()) != 1 {
				t.Fatalf("subscriber was pushed %v while the client moved", values(p))
			}
			continue
		default:
		}
		break
	}
	// And a later change still flows.
	acked(t)(again.Publish(svc, "p1", 2, "w"))
	drain(t, late, func(p *registryv1.Push) error {
		if len(p.GetValues()) != 1 {
			return fmt.Errorf("pushed %v", values(p))
		}
		return nil
	}, func(p *registryv1.Push) bool { return values(p)[0] == "w" })
}
