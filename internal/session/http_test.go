package session_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/strata-registry/strata/internal/session"
	"github.com/strata-registry/strata/internal/testcluster"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// get GETs url from c's admin HTTP as a caller without a certificate
// (only token decides), and returns the status and body.
func get(t *testing.T, c *testcluster.Cluster, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
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

func TestSession_AdminHTTP_ReadyMetricsViews(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, Session: 1, SessionConfig: func(_ int, cfg *session.Config) { cfg.AdminToken = "tok" }})
	c.WaitDataSettled(t)
	cl := c.Connect(t, c.Session(0), "client-1", "z1", true)
	acked(t)(cl.Subscribe(svc, "s", registryv1.Scope_SCOPE_GLOBAL))
	acked(t)(cl.Publish(svc, "p", 1, "v"))
	nextPush(t, cl, key)
	base := c.URL(c.Session(0).Server().HTTPAddr(), "")
	if code, body := get(t, c, base+"/readyz", ""); code != http.StatusOK || !strings.Contains(body, "ready") {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		_, body := get(t, c, base+"/metrics", "")
		for _, want := range []string{"strata_session_connections 1", "strata_session_publishers 1", "strata_session_forward_backlog 0",
			"strata_push_subscribers 1", "strata_push_latency_seconds_count", "strata_push_sent_total",
			`strata_session_registrations_total{kind="publisher"} 1`, `strata_session_registrations_total{kind="subscriber"} 1`} {
			if !strings.Contains(body, want) {
				return &missing{want}
			}
		}
		return nil
	})
	if code, _ := get(t, c, base+"/api/v1/connections", ""); code != http.StatusUnauthorized {
		t.Fatalf("/api/v1/connections without token: %d", code)
	}
	if code, body := get(t, c, base+"/api/v1/connections", "tok"); code != http.StatusOK || !strings.Contains(body, `"client-1"`) {
		t.Fatalf("/api/v1/connections: %d %s", code, body)
	}
	if code, body := get(t, c, base+"/api/v1/subscriptions", "tok"); code != http.StatusOK || !strings.Contains(body, svc) {
		t.Fatalf("/api/v1/subscriptions: %d %s", code, body)
	}
}

type missing struct{ what string }

func (m *missing) Error() string { return "/metrics lacks " + m.what }
