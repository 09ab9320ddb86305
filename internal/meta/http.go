package meta

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/http/pprof"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/strata-registry/strata/internal/slot"
)

// httpHandler serves the admin endpoints:
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
func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "node": s.cfg.NodeID})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		leader, _ := s.raft.raft.LeaderWithID()
		st := s.fsm.Current()
		switch {
		case leader == "":
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "no leader known"})
		case !st.Initialized():
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "cluster not initialized"})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "leader": s.leaderGRPC(), "is_leader": s.raft.raft.State() == raft.Leader})
		}
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	mux.Handle("GET /api/v1/slots", s.admin(func(w http.ResponseWriter, r *http.Request) {
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
		writeJSON(w, http.StatusOK, map[string]any{"epoch": st.Table.Epoch, "settings": st.Settings, "slots": rows})
	}))
	mux.Handle("GET /api/v1/members", s.admin(func(w http.ResponseWriter, r *http.Request) {
		st := s.fsm.Current()
		members := make([]Member, 0, len(st.Members))
		for _, id := range sortedIDs(st.Members) {
			members = append(members, st.Members[id])
		}
		writeJSON(w, http.StatusOK, map[string]any{"cluster_id": st.ClusterID, "members": members, "meta": s.metaPeers()})
	}))
	mux.Handle("/debug/pprof/", s.admin(pprof.Index))
	mux.Handle("/debug/pprof/cmdline", s.admin(pprof.Cmdline))
	mux.Handle("/debug/pprof/profile", s.admin(pprof.Profile))
	mux.Handle("/debug/pprof/symbol", s.admin(pprof.Symbol))
	mux.Handle("/debug/pprof/trace", s.admin(pprof.Trace))
	return mux
}

// admin requires the admin token, when one is configured.
func (s *Server) admin(h http.HandlerFunc) http.Handler {
	if s.cfg.AdminToken == "" {
		return h
	}
	want := []byte("Bearer " + s.cfg.AdminToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "admin token required (Authorization: Bearer <token>)"})
			return
		}
		h(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
