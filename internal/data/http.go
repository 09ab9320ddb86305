package data

import (
	"net/http"
	"strconv"

	"github.com/strata-registry/strata/internal/admin"
	"github.com/strata-registry/strata/internal/slot"
)

// routes adds the data node's admin endpoints to what every node serves
// (/healthz, /readyz: a table has arrived and no slot this node leads is
// migrating, /metrics, pprof): /api/v1/slots (this node's
// slots: role, epochs, sync, counts), /api/v1/datums?slot=N or
// ?data_info_id=K (JSON views).
func (s *Server) routes(m *admin.Mux) {
	m.API("/api/v1/slots", func(w http.ResponseWriter, r *http.Request) {
		type row struct {
			ID          slot.ID     `json:"id"`
			Role        string      `json:"role"`
			Leader      slot.NodeID `json:"leader"`
			LeaderEpoch uint64      `json:"leader_epoch"`
			Migrating   bool        `json:"migrating,omitempty"`
			Synced      bool        `json:"synced,omitempty"`
			Seq         uint64      `json:"seq"`
			Datums      int         `json:"datums"`
			Publishers  int         `json:"publishers"`
		}
		epoch, _ := s.slots.epoch()
		rows := []row{}
		for _, st := range s.slots.all() {
			d, p := st.store.Stats()
			rows = append(rows, row{ID: st.id, Role: st.role.String(), Leader: st.leader, LeaderEpoch: st.leaderEpoch,
				Migrating: st.migrating.Load(), Synced: st.synced.Load(), Seq: st.store.Seq(), Datums: d, Publishers: p})
		}
		admin.WriteJSON(w, http.StatusOK, map[string]any{"node": s.cfg.NodeID, "table_epoch": epoch, "slots": rows})
	})
	m.API("/api/v1/datums", func(w http.ResponseWriter, r *http.Request) {
		if key := r.URL.Query().Get("data_info_id"); key != "" {
			id, ok := s.slots.slotOf(key)
			_, st := s.slots.view(id)
			if !ok || st == nil {
				admin.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "this node does not hold that key's slot"})
				return
			}
			admin.WriteJSON(w, http.StatusOK, st.store.Get(key))
			return
		}
		n, err := strconv.ParseUint(r.URL.Query().Get("slot"), 10, 32)
		if err != nil {
			admin.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "give ?slot=N or ?data_info_id=KEY"})
			return
		}
		_, st := s.slots.view(slot.ID(n))
		if st == nil {
			admin.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "this node does not hold that slot"})
			return
		}
		keys := st.store.Keys()
		out := make([]any, 0, len(keys))
		for _, k := range keys {
			if d := st.store.Get(k); d != nil {
				out = append(out, d)
			}
		}
		admin.WriteJSON(w, http.StatusOK, map[string]any{"slot": n, "role": st.role.String(), "datums": out})
	})
}
