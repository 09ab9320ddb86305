package meta

import (
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-registry/strata/internal/cluster"
)

// collector reads Raft and the FSM at scrape time: no goroutine, no
// counters to keep in step with the state.
type collector struct {
	s *Server

	raftState, term, commit, applied, lastContact  *prometheus.Desc
	members, epoch, leaderless, leaders, followers *prometheus.Desc
	synced                                         *prometheus.Desc
}

func newCollector(s *Server) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("strata_meta_"+name, help, labels, nil)
	}
	return &collector{
		s:           s,
		raftState:   d("raft_state", "1 for this node's current Raft state.", "state"),
		term:        d("raft_term", "Current Raft term."),
		commit:      d("raft_commit_index", "Raft commit index."),
		applied:     d("raft_applied_index", "Raft index applied to the FSM."),
		lastContact: d("raft_last_contact_seconds", "Seconds since a follower last heard from the leader (0 on the leader)."),
		members:     d("members", "Members by role.", "role"),
		epoch:       d("slot_table_epoch", "Epoch of the current slot table."),
		leaderless:  d("slots_without_leader", "Slots with no leader."),
		leaders:     d("slot_leaders", "Slots led, by data node.", "node"),
		followers:   d("slot_followers", "Slots followed, by data node.", "node"),
		synced:      d("slot_followers_synced", "Follower copies reported synced."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.raftState, c.term, c.commit, c.applied, c.lastContact, c.members, c.epoch, c.leaderless, c.leaders, c.followers, c.synced} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	r := c.s.raft.raft
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	state := r.State()
	for _, st := range []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown} {
		v := 0.0
		if st == state {
			v = 1
		}
		g(c.raftState, v, st.String())
	}
	g(c.term, float64(r.CurrentTerm()))
	g(c.commit, float64(r.CommitIndex()))
	g(c.applied, float64(r.AppliedIndex()))
	if state == raft.Leader {
		g(c.lastContact, 0)
	} else if lc := r.LastContact(); !lc.IsZero() {
		g(c.lastContact, time.Since(lc).Seconds()) // raft's clock is the real one
	}

	st := c.s.fsm.Current()
	byRole := map[cluster.Role]int{cluster.RoleData: 0, cluster.RoleSession: 0}
	for _, m := range st.Members {
		byRole[m.Role]++
	}
	for role, n := range byRole {
		g(c.members, float64(n), string(role))
	}
	g(c.epoch, float64(st.Table.Epoch))
	leaderless, synced := 0, 0
	leaders, followers := map[string]int{}, map[string]int{}
	for _, id := range st.DataNodes() {
		leaders[string(id)], followers[string(id)] = 0, 0
	}
	for _, sl := range st.Table.Slots {
		if sl.Leader == "" {
			leaderless++
		} else {
			leaders[string(sl.Leader)]++
		}
		for _, f := range sl.Followers {
			followers[string(f)]++
			if st.Sync.Synced(sl.ID, f) {
				synced++
			}
		}
	}
	if !st.Initialized() || len(st.Table.Slots) == 0 {
		leaderless = st.Settings.Count
	}
	g(c.leaderless, float64(leaderless))
	g(c.synced, float64(synced))
	for n, v := range leaders {
		g(c.leaders, float64(v), n)
	}
	for n, v := range followers {
		g(c.followers, float64(v), n)
	}
}

func (s *Server) registerMetrics() error {
	s.metrics = newCollector(s)
	if err := s.reg.Register(s.metrics); err != nil {
		return fmt.Errorf("meta: register metrics: %w", err)
	}
	return nil
}

func (s *Server) unregisterMetrics() { s.reg.Unregister(s.metrics) }
