package session

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

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
			rows = append(rows, row{ID: c.id, ClientID: c.clientID, Zone: c.zone, Subs: n, Pubs: s.pubs.ofClientCount(c.clientID)})
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

// metrics are read at scrape time (the push engine registers its own:
// latency, retries, failures, in-flight bytes, subscribers).
type metrics struct {
	s                                    *Server
	conns, pubs, backlog, gossip, queued *prometheus.Desc
	redirects, rounds                    *prometheus.Desc
}

func newMetrics(s *Server) *metrics {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("strata_session_"+name, help, nil, nil)
	}
	return &metrics{
		s:       s,
		conns:   d("connections", "Open client connections."),
		pubs:    d("publishers", "Publishers held for this session's clients."),
		backlog: d("forward_backlog", "Publisher writes waiting to reach their slot leader."),
		gossip:  d("gossip_members", "Members in this node's view of the gossip pool."),
		queued:  d("send_queue_bytes", "Bytes of pushes waiting for clients to read, all connections."),
		redirects: prometheus.NewDesc("strata_session_redirects_total",
			"Clients asked to reconnect to a lighter session (connection balance).", nil, nil),
		rounds: prometheus.NewDesc("strata_session_balance_rounds_total", "Connection balance rounds run.", nil, nil),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.conns, m.pubs, m.backlog, m.gossip, m.queued, m.redirects, m.rounds} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	g := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	g(m.conns, m.s.conns.count())
	g(m.pubs, m.s.pubs.count())
	g(m.backlog, m.s.fwd.backlog())
	if a := m.s.Agent(); a != nil { // nil until gossip starts
		g(m.gossip, len(a.Members()))
	}
	m.s.conns.mu.Lock()
	var q int64
	for _, c := range m.s.conns.byID {
		q += c.queued.Load()
	}
	m.s.conns.mu.Unlock()
	g(m.queued, int(q))
	ch <- prometheus.MustNewConstMetric(m.redirects, prometheus.CounterValue, float64(m.s.redirects.Load()))
	ch <- prometheus.MustNewConstMetric(m.rounds, prometheus.CounterValue, float64(m.s.balanceRounds.Load()))
}
