package chaos

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/strata-registry/strata/pkg/client"
)

// maxMetricsBytes bounds one /metrics exposition read by Scrape and
// ParseMetrics.
const maxMetricsBytes = 16 << 20

// Scrape fetches n's /metrics from its admin HTTP (TLS, as the operator)
// and returns its samples as ParseMetrics does.
func (c *Cluster) Scrape(n *Node) (map[string]float64, error) {
	resp, err := c.httpc.Get("https://" + n.Addrs.HTTP + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("%s /metrics: %w", n.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s /metrics: %s", n.ID, resp.Status)
	}
	m, err := ParseMetrics(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.ID, err)
	}
	return m, nil
}

// CollectGarbage makes n run a garbage collection now, through its
// operator-only pprof route (a heap profile with gc=1 collects first), so
// the heap figures of its next /metrics are live bytes only. The heap
// profile taken after the collection is copied to profile (nil: thrown
// away): what the live bytes are.
func (c *Cluster) CollectGarbage(n *Node, profile io.Writer) error {
	resp, err := c.httpc.Get("https://" + n.Addrs.HTTP + "/debug/pprof/heap?gc=1")
	if err != nil {
		return fmt.Errorf("%s gc: %w", n.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s gc: %s", n.ID, resp.Status)
	}
	if profile == nil {
		profile = io.Discard
	}
	if _, err := io.Copy(profile, resp.Body); err != nil {
		return fmt.Errorf("%s gc: read the heap profile: %w", n.ID, err)
	}
	return nil
}

// CPUProfile copies a CPU profile of n over the next d (its operator-only
// pprof route) to w.
func (c *Cluster) CPUProfile(ctx context.Context, n *Node, d time.Duration, w io.Writer) error {
	secs := max(int(d/time.Second), 1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("https://%s/debug/pprof/profile?seconds=%d", n.Addrs.HTTP, secs), nil)
	if err != nil {
		return err
	}
	hc := *c.httpc
	hc.Timeout = time.Duration(secs)*time.Second + 10*time.Second
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s cpu profile: %w", n.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s cpu profile: %s", n.ID, resp.Status)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("%s cpu profile: %w", n.ID, err)
	}
	return nil
}

// ParseMetrics reads a Prometheus text exposition (at most 16 MiB) and
// returns the value of every counter, gauge and untyped sample: under the
// family's name the sum over its series, and, for a family with labels,
// each series also under name{label="value",...} (labels sorted by
// name). Histograms and summaries give their sample count and sum as
// name_count and name_sum.
func ParseMetrics(r io.Reader) (map[string]float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.LimitReader(r, maxMetricsBytes))
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				addSample(out, name, m, m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				addSample(out, name, m, m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				addSample(out, name, m, m.GetUntyped().GetValue())
			case dto.MetricType_HISTOGRAM:
				addSample(out, name+"_count", m, float64(m.GetHistogram().GetSampleCount()))
				addSample(out, name+"_sum", m, m.GetHistogram().GetSampleSum())
			case dto.MetricType_SUMMARY:
				addSample(out, name+"_count", m, float64(m.GetSummary().GetSampleCount()))
				addSample(out, name+"_sum", m, m.GetSummary().GetSampleSum())
			}
		}
	}
	return out, nil
}

// addSample adds v to name's total and, when m has labels, records it
// under its series name too.
func addSample(out map[string]float64, name string, m *dto.Metric, v float64) {
	out[name] += v
	if len(m.GetLabel()) == 0 {
		return
	}
	labels := make([]string, 0, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	slices.Sort(labels)
	out[name+"{"+strings.Join(labels, ",")+"}"] += v
}

// ClientOptionsAt is ClientOptions(false) with s as the only session, so
// a client of it stays on that node.
func (c *Cluster) ClientOptionsAt(s *Node) []client.Option {
	return []client.Option{c.credentials(), client.WithSessions(s.Addrs.GRPC)}
}

// credentials is the option that makes a client the cluster's client
// identity.
func (c *Cluster) credentials() client.Option {
	cr := client.CredentialsDir(string(c.creds), c.client)
	cr.Cluster = c.cluster
	return client.WithCredentials(cr)
}
