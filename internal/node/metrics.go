package node

import "github.com/prometheus/client_golang/prometheus"

// metrics are the node runtime's own, on the node's registry.
type metrics struct {
	denied *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_node_rpc_denied_total",
			Help: "gRPC calls refused before their handler ran, by method and reason (unauthenticated, permission).",
		}, []string{"method", "reason"}),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) { m.denied.Describe(ch) }
func (m *metrics) Collect(ch chan<- prometheus.Metric) { m.denied.Collect(ch) }
