package session

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"

	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Connection balance. Clients pick a session when they connect (lightest
// first, from meta's ListSessions), but connections are long-lived: a
// session added later, or one that restarted, would stay nearly empty while
// the old ones keep their clients. So every BalanceInterval a session
// compares its live client count with the mean over the live sessions
// (their counts as meta last heard them) and, when it holds more than
// BalanceTolerance times the mean, sends a Redirect to enough of its
// clients to come down to the mean, at most BalanceMaxMoves per round.
// A redirected client connects to a suggested session, replays its
// registrations there and only then closes this stream (make before
// break), so nothing it published or subscribed lapses.
//
// The counts of other sessions lag by up to a heartbeat, which is why the
// interval must be several heartbeats long (Validate insists on three):
// clients moved in one round show up in the target's count before the
// next round looks.

// balancePlan is what one round decided: how many clients to redirect, and
// the sessions to suggest to them, lightest first.
type balancePlan struct {
	moves   int
	targets []string
	mean    float64
}

// planBalance decides a round for the session self holding own clients,
// given meta's list of sessions. Only live sessions other than self that
// hold fewer clients than the mean are suggested; with none, nothing moves.
// Pure: no I/O, no clock.
func planBalance(self string, own int, sessions []*registryv1.SessionInfo, tolerance float64, maxMoves int) balancePlan {
	type load struct {
		addr  string
		count int
	}
	var others []load
	total, n := own, 1
	for _, si := range sessions {
		node := si.GetNode()
		if node.GetId() == self || node.GetState() != registryv1.NodeState_NODE_STATE_ALIVE || node.GetGrpcAddress() == "" {
			continue
		}
		others = append(others, load{node.GetGrpcAddress(), int(si.GetClientCount())})
		total += int(si.GetClientCount())
		n++
	}
	mean := float64(total) / float64(n)
	if n < 2 || float64(own) <= mean*tolerance {
		return balancePlan{mean: mean}
	}
	moves := min(own-int(math.Ceil(mean)), maxMoves)
	if moves < 1 {
		return balancePlan{mean: mean}
	}
	slices.SortStableFunc(others, func(a, b load) int { return a.count - b.count })
	var targets []string
	for _, o := range others {
		if float64(o.count) < mean {
			targets = append(targets, o.addr)
		}
	}
	if len(targets) == 0 {
		return balancePlan{mean: mean}
	}
	return balancePlan{moves: moves, targets: targets, mean: mean}
}

// balanceLoop runs a balance round every BalanceInterval (never when the
// interval is 0).
func (s *Server) balanceLoop(ctx context.Context) error {
	if s.cfg.BalanceInterval <= 0 {
		return nil
	}
	t := s.clock.NewTicker(s.cfg.BalanceInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
		s.balanceOnce(ctx)
	}
}

// balanceOnce runs one round and returns the number of clients it
// redirected.
func (s *Server) balanceOnce(ctx context.Context) int {
	defer s.balanceRounds.Add(1)
	var resp *registryv1.ListSessionsResponse
	err := s.meta.Call(ctx, func(ctx context.Context, c registryv1.MetaServiceClient) error {
		var err error
		resp, err = c.ListSessions(ctx, &registryv1.ListSessionsRequest{Zone: s.cfg.Zone})
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			s.logger.Debug("balance: cannot list sessions", "err", err)
		}
		return 0
	}
	own := s.conns.count()
	plan := planBalance(s.cfg.NodeID, own, resp.GetSessions(), s.cfg.BalanceTolerance, s.cfg.BalanceMaxMoves)
	if plan.moves == 0 {
		return 0
	}
	sent := 0
	for _, c := range s.conns.pickForRedirect(plan.moves) {
		f := &registryv1.ServerFrame{Body: &registryv1.ServerFrame_Redirect{Redirect: &registryv1.Redirect{
			Reason:   "connection balance: this session is above the mean load",
			Sessions: plan.targets,
		}}}
		// Never wait on a client: one whose queue is full is skipped.
		if c.out.tryPush(outFrame{f: f}) {
			sent++
		}
	}
	s.redirects.Add(int64(sent))
	s.logger.Info("balance: asked clients to move", "clients", sent, "held", own, "mean", math.Round(plan.mean*10)/10, "to", plan.targets)
	return sent
}

// pickForRedirect marks and returns up to n live connections, chosen at
// random among those not asked to move before (a client that ignores a
// redirect is not asked again on this connection).
func (cs *conns) pickForRedirect(n int) []*clientConn {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var cand []*clientConn
	for _, c := range cs.byID {
		if !c.redirected {
			cand = append(cand, c)
		}
	}
	rand.Shuffle(len(cand), func(i, j int) { cand[i], cand[j] = cand[j], cand[i] })
	cand = cand[:min(n, len(cand))]
	for _, c := range cand {
		c.redirected = true
	}
	return cand
}
