package node

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// metrics are the node runtime's own, on the node's registry.
type metrics struct {
	denied  *prometheus.CounterVec
	refused *prometheus.CounterVec
	open    *prometheus.Desc
	// gRPC server calls, by full method (only registered methods reach
	// the interceptors, so the label set is the node's API) and code.
	handled  *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
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
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_grpc_server_handled_total",
			Help: "gRPC calls this node finished, by method and status code (refused ones included).",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "strata_grpc_server_handling_seconds",
			Help:    "Time from a unary gRPC call's arrival to its answer, by method.",
			Buckets: []float64{.0002, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_grpc_server_streams_in_flight",
			Help: "Open gRPC streams, by method.",
		}, []string{"method"}),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.denied.Describe(ch)
	m.refused.Describe(ch)
	ch <- m.open
	m.handled.Describe(ch)
	m.latency.Describe(ch)
	m.inFlight.Describe(ch)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.denied.Collect(ch)
	m.refused.Collect(ch)
	m.handled.Collect(ch)
	m.latency.Collect(ch)
	m.inFlight.Collect(ch)
	for port, l := range m.listeners {
		ch <- prometheus.MustNewConstMetric(m.open, prometheus.GaugeValue, float64(l.open()), port)
	}
}

// unary records a unary call's code and time; it runs first in the chain,
// so calls the auth interceptor refuses count too.
func (m *metrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	m.latency.WithLabelValues(info.FullMethod).Observe(time.Since(start).Seconds())
	m.handled.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	return resp, err
}

// stream counts a stream while it is open and its code when it ends.
func (m *metrics) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	g := m.inFlight.WithLabelValues(info.FullMethod)
	g.Inc()
	defer g.Dec()
	err := handler(srv, ss)
	m.handled.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	return err
}
