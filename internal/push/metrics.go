package push

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	latency     prometheus.Histogram
	sent        prometheus.Counter
	retried     prometheus.Counter
	superseded  prometheus.Counter
	stalled     prometheus.Counter
	sendFailed  prometheus.Counter
	fetches     prometheus.Counter
	fetchFailed prometheus.Counter
	inflight    prometheus.Gauge
	unacked     prometheus.Gauge
	subscribers prometheus.Gauge
	conns       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_push_" + name, Help: help})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: "strata_push_" + name, Help: help})
	}
	failed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_push_failed_total",
		Help: "Pushes that failed and cost the client its connection, by reason (stalled: in-flight cap; send_error).",
	}, []string{"reason"})
	m := &metrics{
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "strata_push_latency_seconds",
			Help:    "Time from the change on the data node (or the subscription) to the client's ack of the push carrying it.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18), // 100µs .. ~13s
		}),
		sent:        counter("sent_total", "Pushes handed to connections, retries included."),
		retried:     counter("retried_total", "Pushes sent again because their ack did not come in time."),
		superseded:  counter("superseded_total", "Unacked pushes dropped because a newer version was pushed to the same subscriber."),
		stalled:     failed.WithLabelValues("stalled"),
		sendFailed:  failed.WithLabelValues("send_error"),
		fetches:     counter("fetches_total", "Datum fetches started."),
		fetchFailed: counter("fetch_failures_total", "Datum fetches that failed; the last good datum was kept."),
		inflight:    gauge("inflight_bytes", "Bytes of pushes sent and not yet acked, all connections."),
		unacked:     gauge("unacked", "Subscribers with a push sent and not yet acked."),
		subscribers: gauge("subscribers", "Subscribers known to the push engine."),
		conns:       gauge("connections", "Connections with at least one subscriber."),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.latency, m.sent, m.retried, m.superseded, failed,
			m.fetches, m.fetchFailed, m.inflight, m.unacked, m.subscribers, m.conns} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
