package data

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a data node's counters plus gauges read at scrape time.
type metrics struct {
	s *Server

	writes, notices, expired, repaired prometheus.Counter
	snapshots, rejected                prometheus.Counter
	rounds, roundsIncomplete           prometheus.Counter
	repairsDeferred                    prometheus.Counter

	slots, publishers, datums, logOps, lag, streams, replLag, handovers *prometheus.Desc
}

func newMetrics(s *Server) *metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_data_" + name, Help: help})
	}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("strata_data_"+name, help, labels, nil)
	}
	return &metrics{
		s:         s,
		writes:    c("writes_total", "Publisher puts and deletes applied from sessions."),
		notices:   c("notices_sent_total", "Datum versions sent on change streams."),
		expired:   c("lease_expired_publishers_total", "Publishers removed because their session was gone."),
		repaired:  c("antientropy_repairs_total", "Publisher puts and deletes made by anti-entropy."),
		snapshots: c("replication_snapshots_total", "Slot snapshots sent to followers."),
		rejected:  c("rejected_stale_epoch_total", "Requests refused for a stale or foreign epoch."),
		rounds:    c("antientropy_rounds_total", "Anti-entropy rounds that heard from every live session."),
		roundsIncomplete: c("antientropy_rounds_incomplete_total",
			"Anti-entropy rounds that missed a session (it failed, timed out, or was not yet past the handover barrier)."),
		repairsDeferred: c("antientropy_repairs_deferred_total",
			"Slot repairs a routine anti-entropy round left for a later one, the session still writing to the slot."),
		handovers:  d("slots_handover", "Slots this node leads whose handover is in flight (reads refused until every session is checked)."),
		slots:      d("slots", "Slots held, by role.", "role"),
		publishers: d("publishers", "Publishers held, by slot role.", "role"),
		datums:     d("datums", "Datums held, by slot role.", "role"),
		logOps:     d("oplog_ops", "Ops held in slots' replication logs (at most LogCap per led slot; followers keep none), by slot role.", "role"),
		lag:        d("followers_unsynced", "Followed slots not caught up with their leader."),
		streams:    d("change_streams", "Open change streams from sessions."),
		replLag:    d("replication_lag_ops", "Ops this leader has yet to send to its followers, summed over replication streams."),
	}
}

func (m *metrics) counters() []prometheus.Counter {
	return []prometheus.Counter{m.writes, m.notices, m.expired, m.repaired, m.snapshots, m.rejected, m.rounds, m.roundsIncomplete, m.repairsDeferred}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.counters() {
		c.Describe(ch)
	}
	for _, d := range []*prometheus.Desc{m.slots, m.publishers, m.datums, m.logOps, m.lag, m.streams, m.replLag, m.handovers} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.counters() {
		c.Collect(ch)
	}
	slots, pubs, datums, logOps := map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
	for _, r := range []role{roleLeader, roleFollower} {
		slots[r.String()], pubs[r.String()], datums[r.String()], logOps[r.String()] = 0, 0, 0, 0
	}
	unsynced, handovers := 0, 0
	for _, st := range m.s.slots.all() {
		if st.role == roleLeader && st.migrating.Load() {
			handovers++
		}
		r := st.role.String()
		d, p := st.store.Stats()
		slots[r]++
		pubs[r] += p
		datums[r] += d
		logOps[r] += st.store.LogLen()
		if st.role == roleFollower && !st.synced.Load() {
			unsynced++
		}
	}
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	for r := range slots {
		g(m.slots, float64(slots[r]), r)
		g(m.publishers, float64(pubs[r]), r)
		g(m.datums, float64(datums[r]), r)
		g(m.logOps, float64(logOps[r]), r)
	}
	g(m.lag, float64(unsynced))
	g(m.handovers, float64(handovers))
	g(m.streams, float64(m.s.notices.count()))
	g(m.replLag, float64(m.s.repl.lag()))
}
