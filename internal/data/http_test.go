package data_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-registry/strata/internal/data"
	"github.com/strata-registry/strata/internal/testcluster"
)

// httpGet GETs url from c's admin HTTP as a caller without a certificate
// (only token decides), and returns the status and body.
func httpGet(t *testing.T, c *testcluster.Cluster, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.HTTP(t, false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestData_AdminHTTP_ReadyMetricsViews(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, DataConfig: func(_ int, cfg *data.Config) { cfg.AdminToken = "tok" }})
	c.WaitDataSettled(t)
	s := c.StartSession(t, "session-a")
	for i := range 10 {
		s.Publish(t, pub("", key(i), "r1", 1, "a"))
	}
	n := c.RouteOf(t, key(0)).Leader
	base := c.URL(n.Server().HTTPAddr(), "")
	if code, body := httpGet(t, c, base+"/readyz", ""); code != http.StatusOK || !strings.Contains(body, "ready") {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		_, body := httpGet(t, c, base+"/metrics", "")
		for _, want := range []string{
			`strata_data_slots{role="leader"}`, `strata_data_publishers{role="leader"}`, `strata_data_datums{role="follower"}`,
			"strata_data_writes_total", "strata_data_notices_sent_total", "strata_data_rejected_stale_epoch_total",
			"strata_data_replication_lag_ops", "strata_data_followers_unsynced 0", "strata_data_change_streams 1",
			// The runtime's and the process's, on the node's own registry.
			"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes",
		} {
			if !strings.Contains(body, want) {
				return &missing{want}
			}
		}
		return nil
	})
	if code, _ := httpGet(t, c, base+"/api/v1/slots", ""); code != http.StatusUnauthorized {
		t.Fatalf("/api/v1/slots without token: %d", code)
	}
	code, body := httpGet(t, c, base+"/api/v1/slots", "tok")
	if code != http.StatusOK || !strings.Contains(body, `"role": "leader"`) || !strings.Contains(body, `"role": "follower"`) {
		t.Fatalf("/api/v1/slots: %d %.300s", code, body)
	}
	r := c.RouteOf(t, key(0))
	code, body = httpGet(t, c, base+"/api/v1/datums?slot="+itoa(r.Slot), "tok")
	if code != http.StatusOK || !strings.Contains(body, "com.example.svc0") {
		t.Fatalf("/api/v1/datums: %d %.300s", code, body)
	}
	if code, _ := httpGet(t, c, base+"/api/v1/datums?slot=x", "tok"); code != http.StatusBadRequest {
		t.Fatalf("/api/v1/datums?slot=x: %d", code)
	}
}

type missing struct{ what string }

func (m *missing) Error() string { return "/metrics lacks " + m.what }

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// TestData_FollowersKeepNoOpLog: only a slot's leader keeps the ops its
// followers replicate from; a follower's copy holds the datums and no log
// (strata_data_oplog_ops says so on each node).
func TestData_FollowersKeepNoOpLog(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 2})
	c.WaitDataSettled(t)
	s := c.StartSession(t, "session-a")
	const n = 50
	for i := range n {
		s.Publish(t, pub("", key(i), "r1", 1, "a"))
	}
	gauge := func(node *testcluster.DataNode, name, role string) float64 {
		mfs, err := node.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if mf.GetName() == name && len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == role {
					return m.GetGauge().GetValue()
				}
			}
		}
		t.Fatalf("no %s{role=%q} on %s", name, role, node.ID)
		return 0
	}
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		var followed, leaderOps float64
		for _, node := range c.LiveData() {
			followed += gauge(node, "strata_data_publishers", "follower")
			leaderOps += gauge(node, "strata_data_oplog_ops", "leader")
			if ops := gauge(node, "strata_data_oplog_ops", "follower"); ops != 0 {
				t.Fatalf("%s keeps %v ops in the logs of slots it follows, want none", node.ID, ops)
			}
		}
		if followed != n || leaderOps < n {
			return fmt.Errorf("followers hold %v of %d publishers, leaders log %v ops", followed, n, leaderOps)
		}
		return nil
	})
}
