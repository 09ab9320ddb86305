package node

import "github.com/prometheus/client_golang/prometheus"

// metrics are the node runtime's own, on the node's registry.
type metrics struct {
	denied  *prometheus.CounterVec
	refused *prometheus.CounterVec
	open    *prometheus.Desc
	// listeners are the capped listeners by port ("grpc", "http"), set
	// before the node serves.
	listeners map[string]*capListener
}

func newMetrics() *metrics {
	return &metrics{
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_node_rpc_denied_total",
			Help: "gRPC calls refused before their handler ran, by method and reason (unauthenticated, permission).",
		}, []string{"method", "reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_node_connections_refused_total",
			Help: "Connections closed as soon as accepted because the port was at its cap (--max-connections), by port.",
		}, []string{"port"}),
		open: prometheus.NewDesc("strata_node_connections", "Open connections, by port.", []string{"port"}, nil),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.denied.Describe(ch)
	m.refused.Describe(ch)
	ch <- m.open
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.denied.Collect(ch)
	m.refused.Collect(ch)
	for port, l := range m.listeners {
		ch <- prometheus.MustNewConstMetric(m.open, prometheus.GaugeValue, float64(l.open()), port)
	}
}
