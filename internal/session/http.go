package session

import (
	"net/http"

	"github.com/strata-registry/strata/internal/admin"
)

// routes adds the session's admin endpoints to what every node serves
// (/healthz, /readyz: a slot table has arrived, /metrics, pprof):
// /api/v1/connections and /api/v1/subscriptions.
func (s *Server) routes(m *admin.Mux) {
	m.API("/api/v1/connections", func(w http.ResponseWriter, r *http.Request) {
		type row struct {
			ID       string `json:"id"`
			ClientID string `json:"client_id"`
			Identity string `json:"identity,omitempty"`
			Zone     string `json:"zone,omitempty"`
			Subs     int    `json:"subscribers"`
			Pubs     int    `json:"publishers"`
		}
		s.conns.mu.Lock()
		all := make([]*clientConn, 0, len(s.conns.byID))
		for _, c := range s.conns.byID {
			all = append(all, c)
		}
		s.conns.mu.Unlock()
		rows := []row{}
		for _, c := range all {
			c.mu.Lock()
			n := len(c.subs)
			c.mu.Unlock()
			rows = append(rows, row{ID: c.id, ClientID: c.helloID, Identity: c.owner.name, Zone: c.zone, Subs: n, Pubs: s.pubs.ofClientCount(c.clientID)})
		}
		admin.WriteJSON(w, http.StatusOK, map[string]any{"session": s.proc, "connections": rows})
	})
	m.API("/api/v1/subscriptions", func(w http.ResponseWriter, r *http.Request) {
		keys := s.engine.Keys()
		out := make([]map[string]any, 0, len(keys))
		for _, k := range keys {
			out = append(out, map[string]any{"data_info_id": k, "fetched_version": s.engine.Fetched(k)})
		}
		admin.WriteJSON(w, http.StatusOK, map[string]any{"keys": out})
	})
}
