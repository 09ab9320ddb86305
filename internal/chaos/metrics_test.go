package chaos

import (
	"strings"
	"testing"
)

func TestParseMetrics_SumsSeries_KeepsLabelledOnes_CountsHistograms(t *testing.T) {
	const text = `# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 1.5e+06
# TYPE strata_data_publishers gauge
strata_data_publishers{role="leader"} 10
strata_data_publishers{role="follower"} 20
# TYPE strata_session_refused_total counter
strata_session_refused_total{reason="permission",zone="a"} 3
# TYPE strata_push_latency_seconds histogram
strata_push_latency_seconds_bucket{le="0.1"} 4
strata_push_latency_seconds_bucket{le="+Inf"} 5
strata_push_latency_seconds_sum 0.25
strata_push_latency_seconds_count 5
`
	got, err := ParseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"go_memstats_heap_inuse_bytes":                               1.5e6,
		"strata_data_publishers":                                     30,
		`strata_data_publishers{role="leader"}`:                      10,
		`strata_data_publishers{role="follower"}`:                    20,
		"strata_session_refused_total":                               3,
		`strata_session_refused_total{reason="permission",zone="a"}`: 3,
		"strata_push_latency_seconds_count":                          5,
		"strata_push_latency_seconds_sum":                            0.25,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d samples (%v), want %d", len(got), got, len(want))
	}
}

func TestParseMetrics_RejectsMalformedText(t *testing.T) {
	if _, err := ParseMetrics(strings.NewReader("not a metric line {\n")); err == nil {
		t.Fatal("parsed malformed text without an error")
	}
}
