package testcluster

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metric sums the counters and gauges of reg named name, which may select
// series by labels as in PromQL: `name{label="v",other="w"}`. A family
// not registered (or with no matching series) sums to 0.
func Metric(t testing.TB, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	want := map[string]string{}
	if family, labels, ok := strings.Cut(name, "{"); ok {
		name = family
		for _, pair := range strings.Split(strings.TrimSuffix(labels, "}"), ",") {
			k, v, _ := strings.Cut(pair, "=")
			want[k] = strings.Trim(v, `"`)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matches(m, want) {
				sum += value(m)
			}
		}
	}
	return sum
}

// matches reports whether m has every label of want with its value.
func matches(m *dto.Metric, want map[string]string) bool {
	matched := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			matched++
		}
	}
	return matched == len(want)
}

func value(m *dto.Metric) float64 {
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}
