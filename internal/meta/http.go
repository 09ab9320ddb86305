package meta

import (
	"net/http"

	"github.com/hashicorp/raft"

	"github.com/strata-registry/strata/internal/admin"
	"github.com/strata-registry/strata/internal/slot"
)

// routes adds meta's admin endpoints to what every node serves:
//
//	/healthz         200 while the process serves
//	/readyz          200 once this node knows a leader and the cluster is initialized
//	/metrics         Prometheus, from this node's registry
//	/api/v1/slots    the slot table with sync status, JSON
//	/api/v1/members  members and meta peers, JSON
//	/debug/pprof/    profiles
//
// With an admin token configured, /api and /debug need "Authorization:
// Bearer <token>".
func (s *Server) routes(m *admin.Mux) {
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
		admin.WriteJSON(w, http.StatusOK, map[string]any{"cluster_id": st.ClusterID, "members": members, "meta": s.metaPeers()})
	})
}

// readyState is /readyz: ready once this node knows a leader and the
// cluster is initialized.
func (s *Server) readyState() (bool, any) {
	leader, _ := s.raft.raft.LeaderWithID()
	st := s.fsm.Current()
	switch {
	case leader == "":
		return false, map[string]string{"status": "no leader known"}
	case !st.Initialized():
		return false, map[string]string{"status": "cluster not initialized"}
	}
	return true, map[string]any{"status": "ready", "leader": s.leaderGRPC(), "is_leader": s.raft.raft.State() == raft.Leader}
}
