package session_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/sdktest"
	"github.com/strata-registry/strata/internal/session"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/discovery"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// apiClient calls a session's HTTP API as one caller: a bearer token, or
// a TLS client certificate, or nothing.
type apiClient struct {
	t     *testing.T
	base  string
	token string
	hc    *http.Client
}

// httpAPI returns a client of session n's HTTP API that verifies the
// server is that session and sends token ("": none).
func httpAPI(t *testing.T, c *testcluster.Cluster, n *testcluster.SessionNode, token string) *apiClient {
	t.Helper()
	tlsc := c.AnonTLS(t, identity.Peer{Role: identity.RoleSession, Name: n.ID})
	return apiWith(t, n, tlsc, token)
}

// httpAPIAs returns a client that presents role name's certificate.
func httpAPIAs(t *testing.T, c *testcluster.Cluster, n *testcluster.SessionNode, role identity.Role, name string) *apiClient {
	t.Helper()
	return apiWith(t, n, c.Creds(t, role, name).Client(identity.Peer{Role: identity.RoleSession, Name: n.ID}), "")
}

func apiWith(t *testing.T, n *testcluster.SessionNode, tlsc *tls.Config, token string) *apiClient {
	tr := &http.Transport{TLSClientConfig: tlsc, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &apiClient{t: t, base: "https://" + n.Server().HTTPAPIAddr(), token: token, hc: &http.Client{Transport: tr}}
}

// do sends a request and returns the status, the body and the headers.
func (a *apiClient) do(ctx context.Context, method, path string, body []byte, hdr ...string) (int, []byte, http.Header) {
	a.t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, bytes.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return resp.StatusCode, b, resp.Header
}

// poll sends a GET until ctx ends, ignoring the answer (a watcher that
// only holds its place).
func (a *apiClient) poll(ctx context.Context, path string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if resp, err := a.hc.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
}

// must sends a request that must answer want, and decodes the body into out.
func (a *apiClient) must(method, path string, body any, want int, out any) http.Header {
	a.t.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			a.t.Fatal(err)
		}
	}
	code, got, hdr := a.do(sdktest.Ctx(a.t), method, path, b)
	if code != want {
		a.t.Fatalf("%s %s: %d %s, want %d", method, path, code, got, want)
	}
	if out != nil {
		if err := json.Unmarshal(got, out); err != nil {
			a.t.Fatalf("%s %s: %v in %s", method, path, err, got)
		}
	}
	return hdr
}

// goWatcher watches service through pkg/client/discovery on session n.
func goWatcher(t *testing.T, c *testcluster.Cluster, n *testcluster.SessionNode, service string) *discovery.Watcher {
	t.Helper()
	d := discovery.New(sdktest.New(t, c, client.WithSessions(n.Server().GRPCAddr())))
	w, err := d.Watch(sdktest.Ctx(t), service)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// nextSet waits for the watcher's next set that satisfies cond.
func nextSet(t *testing.T, w *discovery.Watcher, what string, cond func(discovery.Set) bool) discovery.Set {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testcluster.DefaultWait)
	defer cancel()
	for {
		set, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for the Go watcher to see %s: %v", what, err)
		}
		if cond(set) {
			return set
		}
	}
}

func hasAddr(addr string) func(discovery.Set) bool {
	return func(s discovery.Set) bool {
		for _, in := range s.Instances {
			if in.Addr == addr {
				return true
			}
		}
		return false
	}
}

func not(f func(discovery.Set) bool) func(discovery.Set) bool {
	return func(s discovery.Set) bool { return !f(s) }
}

// counter reads a counter (or gauge) of a session's registry: the sum of
// its series, or of those with the labels name gives as in
// `family{label="value",...}`.
func counter(t *testing.T, n *testcluster.SessionNode, name string) float64 {
	t.Helper()
	return testcluster.Metric(t, n.Registry, name)
}

const instPath = "/v1/services/" + svc + "/instances/"

// TestHTTPAPI_TTLInstance_PushedToGoWatcher_RemovedWhenHeartbeatsStop: an
// instance registered over HTTP with a TTL reaches a Go discovery watcher,
// stays while heartbeats come (across many TTLs: heartbeats renew it,
// nothing re-registers it), and is removed for the watcher once they stop
// and the TTL lapses.
func TestHTTPAPI_TTLInstance_PushedToGoWatcher_RemovedWhenHeartbeatsStop(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 2, Session: 1})
	c.WaitDataSettled(t)
	n := c.Session(0)
	api := httpAPI(t, c, n, c.Token(t, identity.RoleClient, testcluster.ClientName))
	w := goWatcher(t, c, n, svc)

	const ttl = 300 * time.Millisecond
	var reg session.HTTPRegistration
	api.must(http.MethodPut, instPath+"web-1", session.HTTPInstanceBody{HTTPInstanceSpec: session.HTTPInstanceSpec{Addr: "10.0.0.1:8080", Weight: 5, Zone: "az1", Metadata: map[string]string{"v": "1"}, State: "draining"}, TTL: ttl.String()}, http.StatusCreated, &reg)
	if reg.Instance.ID != "web-1" || reg.Instance.Weight != 5 || reg.TTL != ttl.String() || reg.ExpiresAt.IsZero() {
		t.Fatalf("registration answered %+v", reg)
	}
	set := nextSet(t, w, "the HTTP instance", hasAddr("10.0.0.1:8080"))
	if in := set.Instances[0]; in.Weight != 5 || in.Zone != "az1" || in.Metadata["v"] != "1" || in.State != discovery.StateDraining {
		t.Fatalf("the Go watcher sees %+v", in)
	}

	// Heartbeats every third of the TTL, for eight TTLs: the watcher sees
	// no change (a lapse would push a list without it).
	changes := make(chan discovery.Set, 16)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			set, err := w.Next(ctx)
			if err != nil {
				return
			}
			changes <- set
		}
	})
	for range 24 {
		var hb session.HTTPRegistration
		api.must(http.MethodPut, instPath+"web-1/heartbeat", nil, http.StatusOK, &hb)
		if !hb.ExpiresAt.After(reg.ExpiresAt) {
			t.Fatalf("heartbeat moved the expiry from %v to %v", reg.ExpiresAt, hb.ExpiresAt)
		}
		time.Sleep(ttl / 3) // the heartbeat interval, not a wait for a condition
	}
	stop()
	wg.Wait()
	select {
	case s := <-changes:
		t.Fatalf("the Go watcher was pushed a change while heartbeats came: %+v", s)
	default:
	}
	if got := counter(t, n, "strata_session_http_expiries_total"); got != 0 {
		t.Fatalf("%v expiries while heartbeats came", got)
	}

	// No more heartbeats: removed after the TTL.
	nextSet(t, w, "the instance removed", not(hasAddr("10.0.0.1:8080")))
	if got := counter(t, n, "strata_session_http_expiries_total"); got != 1 {
		t.Fatalf("%v expiries, want 1", got)
	}
	code, body, _ := api.do(sdktest.Ctx(t), http.MethodPut, instPath+"web-1/heartbeat", nil)
	if code != http.StatusNotFound || !strings.Contains(string(body), "register it again") {
		t.Fatalf("heartbeat after the lapse: %d %s", code, body)
	}
	if n.Server().Publishers() != 0 {
		t.Fatalf("the session still holds %d publishers", n.Server().Publishers())
	}
}

// TestHTTPAPI_GoInstance_SeenByLongPollAndEventStream: an instance a Go
// client registers (discovery.Register) is seen by an HTTP blocking query
// (its index advances past the one it waited on) and by an event stream,
// which starts with the current list and sends the next version; a
// blocking query whose wait passes answers the same index; the owner's
// state shows, and an operator's mark that takes less traffic; an event
// stream resumed with Last-Event-ID sends only later versions.
func TestHTTPAPI_GoInstance_SeenByLongPollAndEventStream(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 2, Session: 1})
	c.WaitDataSettled(t)
	n := c.Session(0)
	api := httpAPI(t, c, n, c.Token(t, identity.RoleClient, testcluster.ClientName))
	ctx := sdktest.Ctx(t)

	var first session.HTTPInstanceList
	hdr := api.must(http.MethodGet, "/v1/services/"+svc+"/instances", nil, http.StatusOK, &first)
	if len(first.Instances) != 0 || hdr.Get("X-Strata-Index") != fmt.Sprint(first.Index) {
		t.Fatalf("before any registration: %+v, index header %q", first, hdr.Get("X-Strata-Index"))
	}
	// A wait that passes answers the same index.
	var same session.HTTPInstanceList
	api.must(http.MethodGet, fmt.Sprintf("/v1/services/%s/instances?index=%d&wait=100ms", svc, first.Index), nil, http.StatusOK, &same)
	if same.Index != first.Index {
		t.Fatalf("a blocking query whose wait passed answered index %d, want %d", same.Index, first.Index)
	}

	events := sse(t, api, svc, "")
	ev := events()
	if ev.list.Index != first.Index || len(ev.list.Instances) != 0 {
		t.Fatalf("the stream's first event: %+v", ev)
	}
	polled := make(chan session.HTTPInstanceList, 1)
	go func() {
		var l session.HTTPInstanceList
		api.must(http.MethodGet, fmt.Sprintf("/v1/services/%s/instances?index=%d&wait=30s", svc, first.Index), nil, http.StatusOK, &l)
		polled <- l
	}()
	eventually(t, func() error {
		if got := counter(t, n, "strata_session_http_watchers"); got != 2 {
			return fmt.Errorf("%v watchers, want the stream and the blocking query", got)
		}
		return nil
	})

	d := discovery.New(sdktest.New(t, c, client.WithSessions(n.Server().GRPCAddr()), client.WithZone("az2")))
	reg, err := d.Register(ctx, svc, discovery.Instance{Addr: "10.0.0.2:9090", Weight: 3, Metadata: map[string]string{"lang": "go"}, State: discovery.StateDraining})
	if err != nil {
		t.Fatal(err)
	}
	want := func(l session.HTTPInstanceList, who string) {
		t.Helper()
		if l.Index <= first.Index || len(l.Instances) != 1 {
			t.Fatalf("%s: %+v, want the Go instance at an index above %d", who, l, first.Index)
		}
		in := l.Instances[0]
		if in.ID != reg.ID() || in.Addr != "10.0.0.2:9090" || in.Weight != 3 || in.Zone != "az2" || in.Metadata["lang"] != "go" || in.State != "draining" {
			t.Fatalf("%s sees %+v", who, in)
		}
	}
	select {
	case l := <-polled:
		want(l, "the blocking query")
	case <-time.After(testcluster.DefaultWait):
		t.Fatal("the blocking query did not answer")
	}
	ev = events()
	want(ev.list, "the event stream")
	if ev.id != ev.list.Index {
		t.Fatalf("event id %d, list index %d", ev.id, ev.list.Index)
	}

	// An operator's mark that takes less traffic than the owner's state
	// shows, as discovery's watchers show it.
	conn := c.DialAs(t, c.WaitLeader(t).Server().GRPCAddr(), identity.RoleAdmin, testcluster.AdminName)
	t.Cleanup(func() { _ = conn.Close() })
	if _, err := registryv1.NewMetaServiceClient(conn).SetInstanceState(ctx, &registryv1.SetInstanceStateRequest{
		DataInfoId: key, Addr: "10.0.0.2:9090", State: "disabled", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	ev = events()
	if len(ev.list.Instances) != 1 || ev.list.Instances[0].State != "disabled" {
		t.Fatalf("after the operator's mark the stream sent %+v", ev)
	}

	// Resume after the last event: nothing until the next version.
	resumed := sse(t, api, svc, fmt.Sprint(ev.id))
	if err := reg.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	got := resumed()
	if got.id <= ev.id || len(got.list.Instances) != 0 {
		t.Fatalf("the resumed stream's first event: %+v, want the removal after %d", got, ev.id)
	}
}

type sseEvent struct {
	id   uint64
	list session.HTTPInstanceList
}

// sse opens an event stream of service (resuming after lastID unless
// "") and returns its next event, each call (failing the test when none
// comes within the wait); the stream closes when the test ends.
func sse(t *testing.T, api *apiClient, service, lastID string) func() sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api.base+"/v1/services/"+service+"/watch", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+api.token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := api.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("watch: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan sseEvent, 16)
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); _ = resp.Body.Close(); wg.Wait() })
	wg.Go(func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 4<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				_, _ = fmt.Sscan(strings.TrimPrefix(line, "id: "), &ev.id)
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.list); err != nil {
					t.Errorf("event data: %v", err)
					return
				}
			case line == "" && ev.id != 0 || line == "" && ev.list.Service != "":
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
				ev = sseEvent{}
			}
		}
	})
	return func() sseEvent {
		t.Helper()
		select {
		case ev := <-out:
			return ev
		case <-time.After(testcluster.DefaultWait):
			t.Fatalf("no event within %v", testcluster.DefaultWait)
			return sseEvent{}
		}
	}
}

func eventually(t *testing.T, f func() error) {
	t.Helper()
	testcluster.Eventually(t, testcluster.DefaultWait, f)
}

// TestHTTPAPI_BadInput_ClearStatus_ChangesNothing: every bad request gets
// its clear status and error body, and leaves the session as it was (the
// instances registered first, unchanged, at the same version). On the
// way: the services list shows each identity only what it may subscribe
// to.
func TestHTTPAPI_BadInput_ClearStatus_ChangesNothing(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1, SessionConfig: func(_ int, cfg *session.Config) {
		cfg.HTTPAPI.MaxWatchesPerIdentity = 2
	}})
	c.WaitDataSettled(t)
	n := c.Session(0)
	const aTok, bTok = "token-of-the-a-team-0123456789", "token-of-the-b-team-0123456789"
	c.SetIdentities(t,
		access.Entry{Name: "a-team", Role: identity.RoleClient, TokenSHA256: access.HashToken(aTok), Publish: []string{"a."}, Subscribe: []string{"a."}},
		access.Entry{Name: "b-team", Role: identity.RoleClient, TokenSHA256: access.HashToken(bTok), Publish: []string{"*"}, Subscribe: []string{"*"}})
	a := httpAPI(t, c, n, aTok)
	b := httpAPI(t, c, n, bTok)
	ctx := sdktest.Ctx(t)

	const mine = "/v1/services/a.svc/instances/i-1"
	var reg session.HTTPRegistration
	a.must(http.MethodPut, mine, session.HTTPInstanceBody{HTTPInstanceSpec: session.HTTPInstanceSpec{Addr: "10.0.0.1:80"}, TTL: "1h"}, http.StatusCreated, &reg)
	// The registration is acked once the session holds it; the list shows
	// it once its slot leader has it.
	var before session.HTTPInstanceList
	eventually(t, func() error {
		a.must(http.MethodGet, "/v1/services/a.svc/instances", nil, http.StatusOK, &before)
		if len(before.Instances) != 1 {
			return fmt.Errorf("listed %+v", before)
		}
		return nil
	})

	// The services list shows each identity what it may subscribe to.
	b.must(http.MethodPut, "/v1/services/b.x/instances/j-1", session.HTTPInstanceBody{HTTPInstanceSpec: session.HTTPInstanceSpec{Addr: "10.0.0.2:80"}, TTL: "1h"}, http.StatusCreated, nil)
	eventually(t, func() error {
		for who, want := range map[*apiClient]string{a: "a.svc", b: "a.svc b.x"} {
			var l session.HTTPServiceList
			who.must(http.MethodGet, "/v1/services", nil, http.StatusOK, &l)
			var got []string
			for _, e := range l.Services {
				if e.Publishers != 1 || e.InstanceID != "DEFAULT_INSTANCE_ID" || e.Group != "DEFAULT_GROUP" {
					return fmt.Errorf("listed %+v", e)
				}
				got = append(got, e.Service)
			}
			if strings.Join(got, " ") != want {
				return fmt.Errorf("listed %v, want %s", got, want)
			}
		}
		return nil
	})
	var page session.HTTPServiceList
	b.must(http.MethodGet, "/v1/services?prefix=b.&limit=1", nil, http.StatusOK, &page)
	if len(page.Services) != 1 || page.Services[0].Service != "b.x" || page.Next != "" {
		t.Fatalf("services with prefix b.: %+v", page)
	}

	body := func(v string) []byte { return []byte(v) }
	long := strings.Repeat("s", 600)
	huge := fmt.Sprintf(`{"addr":"10.0.0.1:80","metadata":{"k":%q}}`, strings.Repeat("x", 1<<20))
	tooBig := append(append([]byte(`{"addr":"10.0.0.1:80","metadata":{"k":"`), bytes.Repeat([]byte("x"), 2<<20)...), `"}}`...)
	cases := []struct {
		name   string
		api    *apiClient
		method string
		path   string
		body   []byte
		code   int
		says   string
	}{
		{"malformed JSON", a, http.MethodPut, mine, body(`{"addr":`), 400, "not a valid instance"},
		{"empty body", a, http.MethodPut, mine, nil, 400, "body is empty"},
		{"unknown field", a, http.MethodPut, mine, body(`{"addr":"10.0.0.1:80","port":80}`), 400, `unknown field "port"`},
		{"two JSON values", a, http.MethodPut, mine, body(`{"addr":"10.0.0.1:80"} {}`), 400, "more than one JSON value"},
		{"too long service", a, http.MethodPut, "/v1/services/a." + long + "/instances/i-1", body(`{"addr":"10.0.0.1:80"}`), 400, "data ID is 602 bytes"},
		{"bad instance id", a, http.MethodPut, "/v1/services/a.svc/instances/" + strings.Repeat("i", 129), body(`{"addr":"10.0.0.1:80"}`), 400, "instance id"},
		{"addr without port", a, http.MethodPut, mine, body(`{"addr":"10.0.0.1"}`), 400, "instance address"},
		{"addr port 0", a, http.MethodPut, mine, body(`{"addr":"10.0.0.1:0"}`), 400, "port"},
		{"negative weight", a, http.MethodPut, mine, body(`{"addr":"10.0.0.1:80","weight":-1}`), 400, "weight -1"},
		{"unknown state", a, http.MethodPut, mine, body(`{"addr":"10.0.0.1:80","state":"gone"}`), 400, "state"},
		{"ttl below the least", a, http.MethodPut, mine, body(`{"addr":"10.0.0.1:80","ttl":"1ms"}`), 400, "ttl 1ms is outside"},
		{"ttl above the most", a, http.MethodPut, mine, body(`{"addr":"10.0.0.1:80","ttl":"2h"}`), 400, "ttl 2h0m0s is outside"},
		{"ttl not a duration", a, http.MethodPut, mine, body(`{"addr":"10.0.0.1:80","ttl":"soon"}`), 400, "not a duration"},
		{"encoded instance over 1 MiB", a, http.MethodPut, mine, body(huge), 413, "at most 1048576"},
		{"body over the cap", a, http.MethodPut, mine, tooBig, 413, "body is over"},
		{"wait without index", a, http.MethodGet, "/v1/services/a.svc/instances?wait=1s", nil, 400, "wait needs an index"},
		{"index not a number", a, http.MethodGet, "/v1/services/a.svc/instances?index=x", nil, 400, "not a version"},
		{"wait over the most", a, http.MethodGet, "/v1/services/a.svc/instances?index=1&wait=1h", nil, 400, "at most 5m0s"},
		{"services limit over the most", a, http.MethodGet, "/v1/services?limit=1001", nil, 400, "limit 1001 out of range"},
		{"services limit not a number", a, http.MethodGet, "/v1/services?limit=x", nil, 400, "limit must be a number"},
		{"no credentials", httpAPI(t, c, n, ""), http.MethodPut, mine, body(`{"addr":"10.0.0.1:80"}`), 401, "a client certificate or a bearer token is required"},
		{"unknown token", httpAPI(t, c, n, "not-a-token"), http.MethodGet, "/v1/services/a.svc/instances", nil, 401, "not valid"},
		{"a data node's certificate", httpAPIAs(t, c, n, identity.RoleData, "data-0"), http.MethodPut, mine, body(`{"addr":"10.0.0.1:80"}`), 403, "is not a client"},
		{"an operator's certificate", httpAPIAs(t, c, n, identity.RoleAdmin, testcluster.AdminName), http.MethodGet, "/v1/services/a.svc/instances", nil, 403, "is not a client"},
		{"an operator's token", httpAPI(t, c, n, c.Token(t, identity.RoleAdmin, testcluster.AdminName)), http.MethodDelete, mine, nil, 403, "is not a client"},
		{"publishing outside the prefixes", a, http.MethodPut, "/v1/services/b.x/instances/i-1", body(`{"addr":"10.0.0.1:80"}`), 403, `may not publish under data ID "b.x"`},
		{"watching outside the prefixes", a, http.MethodGet, "/v1/services/b.x/watch", nil, 403, `may not subscribe under data ID "b.x"`},
		{"listing outside the prefixes", a, http.MethodGet, "/v1/services/b.x/instances", nil, 403, `data ID "b.x"`},
		{"another identity renewing my instance", b, http.MethodPut, "/v1/services/a.svc/instances/i-1/heartbeat", nil, 404, "holds no instance"},
		{"another identity deleting my instance", b, http.MethodDelete, mine, nil, 404, "holds no instance"},
		{"no such route", a, http.MethodPost, mine, nil, 404, "no route POST"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.api.t = t
			code, got, _ := tc.api.do(ctx, tc.method, tc.path, tc.body)
			if code != tc.code {
				t.Fatalf("%d %s, want %d", code, got, tc.code)
			}
			var e session.HTTPError
			if tc.says != "" && (json.Unmarshal(got, &e) != nil || !strings.Contains(e.Error, tc.says)) {
				t.Fatalf("answered %s, want an error saying %q", got, tc.says)
			}
		})
	}
	a.t, b.t = t, t

	// Too many watchers for the identity: the third is refused, with
	// Retry-After; the two waiting are not disturbed.
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { a.poll(wctx, fmt.Sprintf("/v1/services/a.svc/instances?index=%d&wait=1m", before.Index)) })
	}
	eventually(t, func() error {
		if got := counter(t, n, "strata_session_http_watchers"); got != 2 {
			return fmt.Errorf("%v watchers open, want 2", got)
		}
		return nil
	})
	code, got, hdr := a.do(ctx, http.MethodGet, "/v1/services/a.svc/watch", nil)
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" || !strings.Contains(string(got), "at most 2 allowed") {
		t.Fatalf("a third watch: %d %s (Retry-After %q), want 429", code, got, hdr.Get("Retry-After"))
	}
	if got := counter(t, n, "strata_session_http_watches_refused_total"); got != 1 {
		t.Fatalf("%v watches refused, want 1", got)
	}
	// b-team's own cap is untouched by a-team's watches.
	b.must(http.MethodGet, "/v1/services/a.svc/instances?index=0&wait=10ms", nil, http.StatusOK, nil)
	cancel()
	wg.Wait()

	// Nothing changed: my instance as it was, at the same version, and
	// nothing else held.
	var after session.HTTPInstanceList
	a.must(http.MethodGet, "/v1/services/a.svc/instances", nil, http.StatusOK, &after)
	if after.Index != before.Index || len(after.Instances) != 1 || !reflect.DeepEqual(after.Instances, before.Instances) {
		t.Fatalf("after the bad requests: %+v, before: %+v", after, before)
	}
	if p := n.Server().Publishers(); p != 2 {
		t.Fatalf("the session holds %d publishers, want a-team's and b-team's", p)
	}
	// And the owner still renews and removes it.
	a.must(http.MethodPut, mine+"/heartbeat", nil, http.StatusOK, nil)
	a.must(http.MethodDelete, mine, nil, http.StatusNoContent, nil)
	a.must(http.MethodDelete, mine, nil, http.StatusNotFound, nil)
}

// TestHTTPAPI_PythonClient_RegistersAndHeartbeats_GoWatcherSeesItComeAndGo:
// a client in another language (Python's standard library: urllib, ssl
// with the cluster's CA, the test client's token; testdata/httpapi_client.py)
// registers an instance with a TTL, sees it in the event stream, heartbeats
// it, lists it, and stops. A Go discovery watcher sees the instance arrive,
// stay while the heartbeats come, and go once they stop.
func TestHTTPAPI_PythonClient_RegistersAndHeartbeats_GoWatcherSeesItComeAndGo(t *testing.T) {
	// Debian's own first: a version manager's shim on PATH may need an
	// environment CI does not have.
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		if python, err = exec.LookPath("python3"); err != nil {
			t.Skip("python3 is not installed: the non-Go client cannot run")
		}
	}
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 2, Session: 1})
	c.WaitDataSettled(t)
	n := c.Session(0)
	w := goWatcher(t, c, n, svc)

	cmd := exec.CommandContext(sdktest.Ctx(t), python, "testdata/httpapi_client.py",
		"https://"+n.Server().HTTPAPIAddr(), c.Credentials().CA(), c.Token(t, identity.RoleClient, testcluster.ClientName),
		svc, "py-1", "400ms", "12", "0.1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	set := nextSet(t, w, "the Python client's instance", hasAddr("192.0.2.7:8443"))
	if in := set.Instances[0]; in.Weight != 7 || in.Zone != "py" || in.Metadata["lang"] != "python" {
		t.Fatalf("the Go watcher sees %+v", in)
	}
	steps, err := io.ReadAll(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the Python client failed: %v\nstdout:\n%s\nstderr:\n%s", err, steps, stderr.String())
	}
	for _, want := range []string{`"registered": "py-1"`, `"watched": "py-1"`, `"heartbeats": 12`, `"listed": 1`} {
		if !strings.Contains(string(steps), want) {
			t.Fatalf("the Python client's steps lack %s:\n%s", want, steps)
		}
	}
	// 12 heartbeats at 0.1 s outlived three TTLs: the instance stayed (the
	// client listed it at the end); now that they stopped, it goes.
	if got := counter(t, n, "strata_session_http_heartbeats_total"); got != 12 {
		t.Fatalf("%v heartbeats taken, want 12", got)
	}
	nextSet(t, w, "the Python client's instance removed", not(hasAddr("192.0.2.7:8443")))
}
