package meta

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// bootstrapLoop forms the first quorum, as Consul's bootstrap-expect does:
// once expect meta nodes with the same expectation are alive in the pool,
// and none of them already belongs to a cluster, each of them bootstraps
// Raft with the same configuration (all of them, sorted). Identical
// configurations make the concurrent bootstraps agree. A node whose peers
// already have a cluster does nothing: that cluster's leader adds it.
func (s *Server) bootstrapLoop(ctx context.Context, expect int) error {
	tick := s.clock.NewTicker(s.cfg.ReconcileInterval)
	defer tick.Stop()
	for {
		if s.raft.raft.Leader() != "" || s.raft.raft.LastIndex() > 0 {
			return nil // a cluster found us first
		}
		peers, ok := s.bootstrapPeers(expect)
		if ok {
			switch known, has := s.peersHaveCluster(ctx, peers); {
			case has:
				s.logger.Info("meta peers already form a cluster; waiting to be added")
				return nil
			case !known:
				// A peer we cannot ask may have a cluster; bootstrapping
				// beside it would split the group. Try again next round.
				peers = nil
			}
		}
		if peers != nil {
			var servers []raft.Server
			for _, p := range peers {
				servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Meta.Raft), Suffrage: raft.Voter})
			}
			err := s.raft.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
			if err != nil && err != raft.ErrCantBootstrap {
				s.logger.Warn("bootstrap raft", "err", err)
			} else {
				s.logger.Info("bootstrapped raft", "voters", len(servers))
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C():
		case <-s.Agent().Changed():
		}
	}
}

// bootstrapPeers returns the alive meta nodes (this one included) when
// there are at least expect of them that all expect the same number.
func (s *Server) bootstrapPeers(expect int) ([]cluster.Member, bool) {
	var peers []cluster.Member
	for _, m := range s.Agent().Members() {
		if m.Meta.Role != cluster.RoleMeta || m.State != cluster.StateAlive || m.Meta.Raft == "" {
			continue
		}
		if m.Meta.Expect != 0 && m.Meta.Expect != expect {
			s.logger.Error("meta peer has a different bootstrap-expect; not bootstrapping", "peer", m.ID, "theirs", m.Meta.Expect, "ours", expect)
			return nil, false
		}
		peers = append(peers, m)
	}
	if len(peers) < expect {
		return nil, false
	}
	slices.SortFunc(peers, func(a, b cluster.Member) int { return cmp.Compare(a.ID, b.ID) })
	return peers, true
}

// peersHaveCluster asks every other peer whether it knows a Raft term: a
// node with a term has been part of a cluster, which a second bootstrap
// would split. known is false if some peer could not be asked.
func (s *Server) peersHaveCluster(ctx context.Context, peers []cluster.Member) (known, has bool) {
	known = true
	for _, p := range peers {
		if p.ID == s.cfg.NodeID {
			continue
		}
		conn, err := s.Pool().Get(p.Meta.GRPC, identity.Peer{Role: identity.RoleMeta, Name: p.ID})
		if err != nil {
			known = false
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := registryv1.NewMetaServiceClient(conn).GetLeader(cctx, &registryv1.GetLeaderRequest{}, grpc.WaitForReady(false))
		cancel()
		switch {
		case err != nil:
			known = false
		case resp.GetTerm() > 0:
			return true, true
		}
	}
	return known, false
}
