package meta

import (
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/strata-registry/strata/internal/admin"
	"github.com/strata-registry/strata/internal/console"
	"github.com/strata-registry/strata/internal/slot"
)

// routes adds meta's admin endpoints to what every node serves:
//
//	/healthz         200 while the process serves
//	/readyz          200 once this node knows a leader and the cluster is
//	                 initialized; the detail says whether slots are moving
//	/metrics         Prometheus, from this node's registry
//	/api/v1/slots    the slot table with sync status, JSON
//	/api/v1/members  members and meta peers, with this node's gossip view
//	                 of each node, JSON
//	/api/v1/services the keys (services) held, paged, JSON (services.go)
//	/api/v1/service  one key's publishers, JSON
//	/api/v1/console/series  the web console's charts and each node's
//	                 latest scrape (console.Series), JSON
//	/ui/             the web console's static page (open: it holds no
//	                 data; everything it shows comes from /api)
//	/debug/pprof/    profiles
//
// With an admin token configured, /api and /debug need "Authorization:
// Bearer <token>".
func (s *Server) routes(m *admin.Mux) {
	s.serviceRoutes(m)
	m.Page(console.Prefix, console.Handler())
	m.API("/api/v1/console/series", s.console.ServeSeries)
	m.API("/api/v1/slots", func(w http.ResponseWriter, r *http.Request) {
		st := s.fsm.Current()
		type row struct {
			ID          slot.ID       `json:"id"`
			Leader      slot.NodeID   `json:"leader"`
			LeaderEpoch uint64        `json:"leader_epoch"`
			Followers   []slot.NodeID `json:"followers"`
			Synced      []slot.NodeID `json:"synced"`
		}
		rows := make([]row, 0, len(st.Table.Slots))
		for _, sl := range st.Table.Slots {
			rw := row{ID: sl.ID, Leader: sl.Leader, LeaderEpoch: sl.LeaderEpoch, Followers: sl.Followers, Synced: []slot.NodeID{}}
			if rw.Followers == nil {
				rw.Followers = []slot.NodeID{}
			}
			for _, f := range sl.Followers {
				if st.Sync.Synced(sl.ID, f) {
					rw.Synced = append(rw.Synced, f)
				}
			}
			rows = append(rows, rw)
		}
		admin.WriteJSON(w, http.StatusOK, map[string]any{"epoch": st.Table.Epoch, "settings": st.Settings, "slots": rows})
	})
	m.API("/api/v1/members", func(w http.ResponseWriter, r *http.Request) {
		st := s.fsm.Current()
		members := make([]Member, 0, len(st.Members))
		for _, id := range sortedIDs(st.Members) {
			members = append(members, st.Members[id])
		}
		// gossip is this node's view of the pool (alive, suspect, dead,
		// left) by node id: a member that stopped answering stays a
		// member until its dead grace has passed.
		gossip := map[string]string{}
		for _, pm := range s.Agent().Members() {
			gossip[pm.ID] = pm.State.String()
		}
		admin.WriteJSON(w, http.StatusOK, map[string]any{"cluster_id": st.ClusterID, "members": members, "meta": s.metaPeers(), "gossip": gossip})
	})
}

// readyState is /readyz: ready once this node knows a leader and the
// cluster is initialized. The detail's "slots" says whether slots are
// still moving (slotMotion); moves never make the node unready: they are
// for operators (registryctl health) to watch, not for load balancers.
func (s *Server) readyState() (bool, any) {
	leader, _ := s.raft.raft.LeaderWithID()
	st := s.fsm.Current()
	switch {
	case leader == "":
		return false, map[string]string{"status": "no leader known"}
	case !st.Initialized():
		return false, map[string]string{"status": "cluster not initialized"}
	}
	isLeader := s.raft.raft.State() == raft.Leader
	return true, map[string]any{
		"status": "ready", "leader": s.leaderGRPC(), "is_leader": isLeader,
		"slots": s.slotMotion(st, isLeader && s.leaderReady.Load()),
	}
}

// Values of slotMotion.State.
const (
	motionSettled = "settled"
	motionMoving  = "moving"
	// motionUnknown: the arranger cannot compute from this state (Error
	// says why).
	motionUnknown = "unknown"
)

// slotMotion is /readyz's "slots": whether the slot table is still moving,
// and the counts behind it. It is settled when every count is 0.
type slotMotion struct {
	State      string `json:"state"`
	TableEpoch uint64 `json:"table_epoch"`
	// PendingMoves is the rows the arranger's next round would change (as
	// runArranger computes it, with this node's view of the pool; nothing
	// is proposed): failovers, followers to add or drop, leaders to hand
	// over. A round is capped at MaxMoves voluntary moves, so more rounds
	// may follow.
	PendingMoves int `json:"pending_moves"`
	// FollowersSyncing is the follower copies not yet reported synced at
	// their slot's current leader epoch.
	FollowersSyncing int `json:"followers_syncing"`
	// Handovers is the slots whose leader has its handover in flight
	// (reads refused until every session is checked): what data nodes
	// report in heartbeats, plus the leaderships their leader has not
	// reported on yet. Only the Raft leader hears heartbeats: nil (JSON
	// null) on a follower, whose state counts the other two. With two or
	// more copies per slot that misses nothing: a new leader tells no
	// follower it is caught up before its handover completes, so a
	// follower of the slot stays syncing until then.
	Handovers *int `json:"handovers"`
	// HandoversUnreported is the part of Handovers counted because the
	// slot's leader has not reported since it got the slot (a heartbeat
	// interval after a move, or after a meta leader change).
	HandoversUnreported *int `json:"handovers_unreported,omitempty"`
	// Error is why the arranger cannot compute from this state.
	Error string `json:"error,omitempty"`
}

// slotMotion computes the readiness detail of slot moves from st; leading
// says this node is the ready Raft leader, which alone knows handovers.
func (s *Server) slotMotion(st *State, leading bool) slotMotion {
	v := slotMotion{TableEpoch: st.Table.Epoch}
	var err error
	v.PendingMoves, v.FollowersSyncing, err = s.motion.counts(st, s.arrangeable(st), s.cfg.MaxMoves)
	if err != nil {
		v.State, v.Error = motionUnknown, err.Error()
		return v
	}
	moving := v.PendingMoves > 0 || v.FollowersSyncing > 0
	if leading {
		reported, unreported := handoversInFlight(st, s.handovers.snapshot())
		total := reported + unreported
		v.Handovers, v.HandoversUnreported = &total, &unreported
		moving = moving || total > 0
	}
	v.State = motionSettled
	if moving {
		v.State = motionMoving
	}
	return v
}

// motionCache keeps the counts computed from the last replicated state,
// so a /readyz polled often runs an arranger round only when the state or
// the pool changed. Uncached it costs ~60 µs for 256 slots over 5 nodes
// and ~5 ms for slot.MaxCount (BenchmarkMotionCounts, 2 cores).
type motionCache struct {
	mu sync.Mutex
	// key: the state (immutable, swapped by every apply), the live data
	// nodes and the move cap it was computed with.
	st       *State
	nodes    []slot.NodeID
	maxMoves int
	// value
	pending, syncing int
	err              error
}

// counts returns pending moves and syncing followers of st, from the
// cache when st, nodes and maxMoves are those of the last call.
func (c *motionCache) counts(st *State, nodes []slot.NodeID, maxMoves int) (pending, syncing int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st != st || c.maxMoves != maxMoves || !slices.Equal(c.nodes, nodes) {
		c.pending, c.syncing, c.err = motionCounts(st, nodes, maxMoves)
		c.st, c.nodes, c.maxMoves = st, nodes, maxMoves
	}
	return c.pending, c.syncing, c.err
}

// motionCounts computes what motionCache caches: the rows the arranger's
// next round changes, and the follower copies not synced.
func motionCounts(st *State, nodes []slot.NodeID, maxMoves int) (pending, syncing int, err error) {
	for _, sl := range st.Table.Slots {
		for _, f := range sl.Followers {
			if !st.Sync.Synced(sl.ID, f) {
				syncing++
			}
		}
	}
	settings := st.Settings
	settings.MaxMoves = maxMoves
	next, err := slot.Next(st.Table, nodes, st.Sync, settings)
	if err != nil {
		return 0, syncing, fmt.Errorf("slot arranger: %w", err)
	}
	if next.Epoch == st.Table.Epoch {
		return 0, syncing, nil
	}
	if len(st.Table.Slots) == 0 {
		return len(next.Slots), syncing, nil // the first table
	}
	for i := range next.Slots {
		if !next.Slots[i].Equal(st.Table.Slots[i]) {
			pending++
		}
	}
	return pending, syncing, nil
}

// handoversInFlight counts the slots of st's table whose handover is in
// flight by their leaders' reports: reported, the slot is in its leader's
// latest report and its leadership has not changed since that report's
// table; unreported, its leader has sent no report yet, or its report
// predates the slot's current leadership (or is older than the table
// history, which cannot tell). A report at epoch 0 comes from a node
// without a table or from a version without the field: it says nothing,
// and the node's own /readyz is the authority.
func handoversInFlight(st *State, reports map[string]handoverReport) (reported, unreported int) {
	// The table each report was made at, looked up once per node.
	asOf := make(map[string]*slot.Table, len(reports))
	for id, r := range reports {
		if r.epoch != 0 && r.epoch < st.Table.Epoch {
			asOf[id] = tableAt(st, r.epoch)
		}
	}
	for _, sl := range st.Table.Slots {
		if sl.Leader == "" {
			continue
		}
		r, ok := reports[string(sl.Leader)]
		switch {
		case !ok:
			unreported++
		case r.epoch == 0:
		case r.epoch >= st.Table.Epoch || sameLeadership(asOf[string(sl.Leader)], sl):
			if r.slots[sl.ID] {
				reported++
			}
		default:
			unreported++
		}
	}
	return reported, unreported
}

// tableAt returns st's table of epoch, or nil when st no longer holds it.
func tableAt(st *State, epoch uint64) *slot.Table {
	for i := range st.history {
		if st.history[i].Epoch == epoch {
			return &st.history[i]
		}
	}
	if st.Table.Epoch == epoch {
		return &st.Table
	}
	return nil
}

// sameLeadership reports whether sl has the same leader and leader epoch
// in t (nil: unknown, false).
func sameLeadership(t *slot.Table, sl slot.Slot) bool {
	if t == nil || int(sl.ID) >= len(t.Slots) {
		return false
	}
	old := t.Slots[sl.ID]
	return old.Leader == sl.Leader && old.LeaderEpoch == sl.LeaderEpoch
}
