package session

import "github.com/prometheus/client_golang/prometheus"

// metrics are read at scrape time (the push engine registers its own:
// latency, retries, failures, in-flight bytes, subscribers).
type metrics struct {
	s                                    *Server
	conns, pubs, backlog, gossip, queued *prometheus.Desc
	redirects, rounds, throttled         *prometheus.Desc
	registered                           *prometheus.Desc
	// refusals counts client requests refused by a limit or a right;
	// refused holds its children, resolved once (a flood of refusals
	// costs no label lookups).
	refusals *prometheus.CounterVec
	refused  [numRefusals]prometheus.Counter
}

// refusal is why a client request was refused: a strata_session_refused_total
// reason.
type refusal int

const (
	refusedPermission refusal = iota
	refusedRateConnection
	refusedRateIdentity
	refusedQuotaConnection
	refusedQuotaIdentity
	refusedStreamsIdentity
	refusedUndecodable
	refusedAppliedWaiting
	numRefusals
)

// String returns the reason's label value.
func (r refusal) String() string {
	switch r {
	case refusedPermission:
		return "permission"
	case refusedRateConnection:
		return "rate_connection"
	case refusedRateIdentity:
		return "rate_identity"
	case refusedQuotaConnection:
		return "quota_connection"
	case refusedQuotaIdentity:
		return "quota_identity"
	case refusedStreamsIdentity:
		return "streams_identity"
	case refusedUndecodable:
		return "undecodable"
	case refusedAppliedWaiting:
		return "applied_waiting"
	}
	return "unknown"
}

func newMetrics(s *Server) *metrics {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("strata_session_"+name, help, nil, nil)
	}
	m := &metrics{
		s:       s,
		conns:   d("connections", "Open client connections."),
		pubs:    d("publishers", "Publishers held for this session's clients."),
		backlog: d("forward_backlog", "Publisher writes waiting to reach their slot leader."),
		gossip:  d("gossip_members", "Members in this node's view of the gossip pool."),
		queued:  d("send_queue_bytes", "Bytes of pushes waiting for clients to read, all connections."),
		redirects: prometheus.NewDesc("strata_session_redirects_total",
			"Clients asked to reconnect to a lighter session (connection balance).", nil, nil),
		rounds: prometheus.NewDesc("strata_session_balance_rounds_total", "Connection balance rounds run.", nil, nil),
		throttled: prometheus.NewDesc("strata_session_registrations_throttled_total",
			"Registrations slowed down to their connection's or identity's rate (waited, then served).", nil, nil),
		registered: prometheus.NewDesc("strata_session_registrations_total",
			"Registrations accepted from clients, by kind (publisher, subscriber); updates and replays after a reconnect count too.", []string{"kind"}, nil),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_session_refused_total",
			Help: "Client requests refused before they changed anything, by reason: permission (the identity's rights), rate_connection, rate_identity, quota_connection, quota_identity, streams_identity (the identity's open streams on this session), undecodable (a frame that does not decode, such as invalid UTF-8).",
		}, []string{"reason"}),
	}
	for r := range numRefusals {
		m.refused[r] = m.refusals.WithLabelValues(r.String())
	}
	return m
}

// refused counts a client request refused for reason.
func (s *Server) refused(reason refusal) { s.metrics.refused[reason].Inc() }

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.conns, m.pubs, m.backlog, m.gossip, m.queued, m.redirects, m.rounds, m.throttled, m.registered} {
		ch <- d
	}
	m.refusals.Describe(ch)
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
	ch <- prometheus.MustNewConstMetric(m.throttled, prometheus.CounterValue, float64(m.s.throttled.Load()))
	ch <- prometheus.MustNewConstMetric(m.registered, prometheus.CounterValue, float64(m.s.registeredPubs.Load()), "publisher")
	ch <- prometheus.MustNewConstMetric(m.registered, prometheus.CounterValue, float64(m.s.registeredSubs.Load()), "subscriber")
	m.refusals.Collect(ch)
}
