package meta_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/meta"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client/identity"
)

// get GETs url from c's admin HTTP as a caller without a certificate
// (only token decides), and returns the status and body.
func get(t *testing.T, c *testcluster.Cluster, url, token string) (int, string) {
	t.Helper()
	auth := ""
	if token != "" {
		auth = "Bearer " + token
	}
	resp, body := do(t, c.HTTP(t, false), url, auth)
	return resp.StatusCode, body
}

// do GETs url with hc, the Authorization header set to auth unless it is
// "", and returns the response (its body closed) and the body.
func do(t *testing.T, hc *http.Client, url, auth string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestMeta_AdminHTTP_HealthReadyMetricsAPI_TokenGuarded(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, MetaConfig: func(_ int, cfg *meta.Config) { cfg.AdminToken = "s3cret" }})
	for i := range 2 {
		c.StartPeer(t, fmt.Sprintf("data-%d", i), cluster.RoleData).SetSynced(true)
	}
	leader := c.WaitLeader(t)
	testcluster.Eventually(t, testcluster.DefaultWait, func() error { return fullTable(leader.Server().State()) })

	for _, n := range c.LiveMetas() {
		base := c.URL(n.Server().HTTPAddr(), "")
		if code, body := get(t, c, base+"/healthz", ""); code != http.StatusOK || !strings.Contains(body, n.ID) {
			t.Fatalf("%s /healthz: %d %s", n.ID, code, body)
		}
		if code, body := get(t, c, base+"/readyz", ""); code != http.StatusOK || !strings.Contains(body, leader.Server().GRPCAddr()) {
			t.Fatalf("%s /readyz: %d %s", n.ID, code, body)
		}
	}
	base := c.URL(leader.Server().HTTPAddr(), "")
	code, body := get(t, c, base+"/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`strata_meta_raft_state{state="Leader"} 1`,
		`strata_meta_members{role="data"} 2`,
		`strata_meta_slots_without_leader 0`,
		`strata_meta_slot_leaders{node="data-0"} 128`,
		"strata_meta_raft_commit_index",
		"strata_meta_slot_table_epoch",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	for _, path := range []string{"/api/v1/slots", "/api/v1/members", "/api/v1/console/series", "/debug/pprof/"} {
		if code, _ := get(t, c, base+path, ""); code != http.StatusUnauthorized {
			t.Errorf("%s without token: %d, want 401", path, code)
		}
		if code, _ := get(t, c, base+path, "wrong"); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d, want 401", path, code)
		}
	}
	// 401 asks for credentials; a caller who proved an identity that is
	// not an operator's (a client's token or certificate) gets 403.
	if resp, _ := do(t, c.HTTP(t, false), base+"/api/v1/members", ""); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("/api without credentials: %s, WWW-Authenticate %q; want 401 with a challenge", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	if resp, _ := do(t, c.HTTP(t, false), base+"/api/v1/members", "Basic czNjcmV0"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/api with a malformed Authorization header: %s, want 401", resp.Status)
	}
	if code, body := get(t, c, base+"/api/v1/members", c.Token(t, identity.RoleClient, testcluster.ClientName)); code != http.StatusForbidden || !strings.Contains(body, "not an operator") {
		t.Errorf("/api with a client's token: %d %s, want 403 saying it is not an operator", code, body)
	}
	asClient := &http.Client{Transport: &http.Transport{TLSClientConfig: c.Creds(t, identity.RoleClient, testcluster.ClientName).Client(identity.AnyNode)}}
	t.Cleanup(asClient.CloseIdleConnections)
	if resp, _ := do(t, asClient, base+"/api/v1/members", ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("/api with a client's certificate: %s, want 403", resp.Status)
	}
	code, body = get(t, c, base+"/api/v1/slots", "s3cret")
	if code != http.StatusOK {
		t.Fatalf("/api/v1/slots: %d %s", code, body)
	}
	var slots struct {
		Epoch uint64 `json:"epoch"`
		Slots []struct {
			ID        uint32   `json:"id"`
			Leader    string   `json:"leader"`
			Followers []string `json:"followers"`
		} `json:"slots"`
	}
	if err := json.Unmarshal([]byte(body), &slots); err != nil {
		t.Fatal(err)
	}
	if len(slots.Slots) != 256 || slots.Epoch == 0 || slots.Slots[7].Leader == "" || len(slots.Slots[7].Followers) != 1 {
		t.Fatalf("/api/v1/slots: epoch %d, %d slots, slot 7 %+v", slots.Epoch, len(slots.Slots), slots.Slots[7])
	}
	code, body = get(t, c, base+"/api/v1/members", "s3cret")
	if code != http.StatusOK || !strings.Contains(body, `"data-1"`) || !strings.Contains(body, `"meta-2"`) || !strings.Contains(body, `"meta-2": "alive"`) {
		t.Fatalf("/api/v1/members: %d %s", code, body)
	}
}

// The console's page is open and holds no data; its data routes are
// guarded like the rest of /api (the test above), and its collector
// scrapes every meta node it knows.
func TestMeta_Console_PageOpenWithStrictHeaders_SeriesScrapesTheNodes(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, MetaConfig: func(_ int, cfg *meta.Config) {
		cfg.AdminToken = "s3cret"
		cfg.Console.Interval, cfg.Console.History = 100*time.Millisecond, time.Minute
	}})
	base := c.URL(c.WaitLeader(t).Server().HTTPAddr(), "")
	for path, ctype := range map[string]string{"/ui/": "text/html", "/ui/console.js": "text/javascript", "/ui/console.css": "text/css"} {
		resp, body := do(t, c.HTTP(t, false), base+path, "")
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) || len(body) < 100 {
			t.Fatalf("%s without a token: %s %q, %d bytes; want 200 %s", path, resp.Status, resp.Header.Get("Content-Type"), len(body), ctype)
		}
		h := resp.Header
		if !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'self'") || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
			h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" {
			t.Fatalf("%s headers %v: want the strict CSP, nosniff and DENY", path, h)
		}
	}
	for _, path := range []string{"/ui/nope", "/ui/static/index.html", "/ui/index.html", "/ui/console.js/"} {
		if code, body := get(t, c, base+path, ""); code != http.StatusNotFound || strings.Contains(body, "members") {
			t.Errorf("%s: %d %q, want 404", path, code, body)
		}
	}
	if resp, _ := do(t, c.HTTP(t, false), base+"/ui", ""); resp.Request.URL.Path != "/ui/" {
		t.Errorf("/ui ended at %s, want a redirect to /ui/", resp.Request.URL)
	}
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		code, body := get(t, c, base+"/api/v1/console/series", "s3cret")
		var s struct {
			Points []json.RawMessage `json:"points"`
			Nodes  []struct {
				ID    string `json:"id"`
				Up    bool   `json:"up"`
				Error string `json:"error"`
			} `json:"nodes"`
		}
		if err := json.Unmarshal([]byte(body), &s); code != http.StatusOK || err != nil {
			return fmt.Errorf("series: %d %v %.300s", code, err, body)
		}
		if len(s.Points) < 2 || len(s.Nodes) != 3 {
			return fmt.Errorf("%d points, nodes %+v; want 2 or more, the 3 meta nodes", len(s.Points), s.Nodes)
		}
		for _, n := range s.Nodes {
			if !n.Up {
				return fmt.Errorf("%s not scraped over TLS: %s", n.ID, n.Error)
			}
		}
		return nil
	})
}
