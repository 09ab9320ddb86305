package console_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/strata-registry/strata/internal/console"
	"github.com/strata-registry/strata/internal/testcluster"
)

// fakeServices answers the services routes in their format (GET
// /api/v1/services?prefix=P&limit=N&after=TOKEN and GET
// /api/v1/service?data_info_id=X), two services a page whatever the limit,
// as a server may, so one test turns pages.
type fakeServices struct {
	mu      sync.Mutex
	ids     []string                  // data info IDs, sorted
	detail  map[string]map[string]any // by data info ID
	queries []map[string]string       // what the page asked for
}

func (f *fakeServices) add(dataID string, detail map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := dataID + "#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP"
	f.ids = append(f.ids, id)
	slices.Sort(f.ids)
	detail["data_info_id"] = id
	f.detail[id] = detail
}

// asked says whether the page asked for the services with key=value.
func (f *fakeServices) asked(key, value string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.ContainsFunc(f.queries, func(q map[string]string) bool { return q[key] == value }) {
		return fmt.Errorf("the page asked for %v, never %s=%s", f.queries, key, value)
	}
	return nil
}

func (f *fakeServices) list(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := r.URL.Query()
	f.queries = append(f.queries, map[string]string{"prefix": q.Get("prefix"), "limit": q.Get("limit"), "after": q.Get("after")})
	type row struct {
		DataInfoID string `json:"data_info_id"`
		DataID     string `json:"data_id"`
		InstanceID string `json:"instance_id"`
		Group      string `json:"group"`
		Publishers int    `json:"publishers"`
	}
	rows := []row{}
	next := ""
	for _, id := range f.ids {
		dataID, _, _ := strings.Cut(id, "#@#")
		if !strings.HasPrefix(dataID, q.Get("prefix")) || id <= q.Get("after") {
			continue
		}
		if len(rows) == 2 {
			next = rows[1].DataInfoID
			break
		}
		rows = append(rows, row{id, dataID, "DEFAULT_INSTANCE_ID", "DEFAULT_GROUP", len(f.detail[id]["publishers"].([]map[string]any))})
	}
	page := map[string]any{"services": rows, "next": next}
	if q.Get("prefix") != "" {
		page["missing_slots"] = []int{7} // a slot without a leader: the list is partial
	}
	writeJSON(w, page)
}

func (f *fakeServices) one(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.detail[r.URL.Query().Get("data_info_id")]
	if !ok {
		http.Error(w, `{"error":"no such service"}`, http.StatusNotFound)
		return
	}
	writeJSON(w, d)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func publisher(id string, values ...string) map[string]any {
	return map[string]any{"register_id": id, "zone": "az1", "session": "session-0", "values": values}
}

// The services view's paging and rendering, with fake answers in the
// routes' format and no cluster (the cluster test's services subtest has
// the real routes, with one page): services appear and pages turn without
// a reload, the search asks for a data ID prefix and a partial list says
// so, an instance shows its address, weight, zone and state, other values
// show as truncated text, and HTML in a data ID or a value stays text.
func TestConsole_Browser_ServicesView_RendersTheContract(t *testing.T) {
	f := &fakeServices{detail: map[string]map[string]any{}}
	f.add("console.echo", map[string]any{"version": 12, "publishers": []map[string]any{
		publisher("pub-1", `{"v":1,"addr":"10.0.0.1:8080","weight":10,"zone":"az1","metadata":{"version":"1.4.2"},"state":"draining"}`,
			`{"v":1,"addr":"10.0.0.2:8080"}`,
			strings.Repeat("x", 300)),
		publisher("pub-2", `<b>not an instance</b>`, `{"v":1,"addr":"10.0.0.3:8080"}`),
	}, "instance_states": map[string]string{"10.0.0.1:8080": "draining", "10.0.0.3:8080": "disabled"}})
	f.add(xss, map[string]any{"version": 1, "publishers": []map[string]any{publisher("pub-3", `<script>alert(2)</script>`)}})

	mux := http.NewServeMux()
	guard := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer tok" {
				w.WriteHeader(http.StatusUnauthorized)
				writeJSON(w, map[string]string{"error": "the bearer token is not valid"})
				return
			}
			h(w, r)
		}
	}
	answer := func(v any) http.HandlerFunc {
		return guard(func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, v) })
	}
	mux.Handle("GET /ui/", console.Handler())
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{"status": "ready", "slots": map[string]any{"state": "settled", "table_epoch": 1}})
	})
	mux.HandleFunc("GET /api/v1/members", answer(map[string]any{"cluster_id": "fake",
		"members": []map[string]any{{"id": "data-0", "role": "data", "grpc": "127.0.0.1:1", "http": "127.0.0.1:2", "zone": "az1"}},
		"meta":    []map[string]any{{"id": "meta-0", "leader": true, "voter": true}},
		"gossip":  map[string]string{"data-0": "alive", "meta-0": "alive"}}))
	mux.HandleFunc("GET /api/v1/slots", answer(map[string]any{"epoch": 1,
		"slots": []map[string]any{{"id": 0, "leader": "data-0", "leader_epoch": 1, "followers": []string{}, "synced": []string{}}}}))
	mux.HandleFunc("GET /api/v1/console/series", answer(map[string]any{"interval_seconds": 1, "window_seconds": 5, "capacity": 60, "points": []any{}, "nodes": []any{}}))
	mux.HandleFunc("GET /api/v1/services", guard(f.list))
	mux.HandleFunc("GET /api/v1/service", guard(f.one))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	b := newBrowser(t, "")
	b.do(t, "open the console", chromedp.Navigate(srv.URL+"/ui/"), chromedp.WaitVisible(chromedp.ID("login")))
	b.do(t, "enter the token", chromedp.SendKeys(chromedp.ID("token"), "tok"), chromedp.Click(chromedp.ID("connect")))
	rows := `[...document.querySelectorAll('#service-list tr[data-service]')].map(r => r.children[0].textContent).join('|')`
	b.wait(t, "lists both services, the HTML one as text", rows+` === `+jsString(xss+"|console.echo")+` && `+noInjectedEl, 10*time.Second)
	if err := f.asked("limit", "100"); err != nil {
		t.Fatal(err)
	}

	b.do(t, "open console.echo", chromedp.Click(chromedp.CSS(`#service-list tr[data-service^="console.echo"]`)))
	b.wait(t, "shows the instances, a record without a state as serving", `(() => { const e = document.querySelector('#service-detail [data-addr="10.0.0.1:8080"]');
		const f = document.querySelector('#service-detail [data-addr="10.0.0.2:8080"]');
		return e !== null && e.textContent === '10.0.0.1:8080 · weight 10 · zone az1 · state draining · version=1.4.2' &&
			f !== null && f.textContent === '10.0.0.2:8080 · weight 1 · state serving'; })()`, 10*time.Second)
	b.wait(t, "shows an operator's mark that holds an instance back, and only such", `(() => { const e = document.querySelector('#service-detail [data-addr="10.0.0.3:8080"]');
		return e !== null && e.textContent === '10.0.0.3:8080 · weight 1 · state disabled (operator)' && e.dataset.state === 'disabled'; })()`, 10*time.Second)
	b.wait(t, "shows other values as text, long ones truncated",
		`(() => { const raw = [...document.querySelectorAll('#service-detail .raw')].map(e => e.textContent);
		return raw.includes('<b>not an instance</b>') && raw.includes('x'.repeat(200) + '… (300 characters)'); })() && `+noInjectedEl, 10*time.Second)
	b.wait(t, "shows the version and publisher count", `document.querySelector('#service-detail h3').textContent.endsWith('version 12 · 2 publishers')`, 5*time.Second)
	b.shot(t, "services-contract.png")

	// A service registered meanwhile turns up on a second page, without
	// a reload.
	f.add("console.new", map[string]any{"version": 1, "publishers": []map[string]any{publisher("pub-4", "plain")}})
	b.wait(t, "offers a next page", `!document.getElementById('services-next').hidden`, 10*time.Second)
	b.do(t, "turn the page", chromedp.Click(chromedp.ID("services-next")))
	b.wait(t, "shows the new service", rows+` === 'console.new'`, 10*time.Second)
	if err := f.asked("after", "console.echo#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP"); err != nil {
		t.Fatal(err) // the last ID of page 1
	}
	b.do(t, "back to the first page", chromedp.Click(chromedp.ID("services-first")))
	b.wait(t, "shows the first page", rows+` === `+jsString(xss+"|console.echo"), 10*time.Second)

	b.do(t, "search", chromedp.SendKeys(chromedp.ID("search"), "console."))
	testcluster.Eventually(t, 10*time.Second, func() error { return f.asked("prefix", "console.") })
	b.wait(t, "lists the services under the prefix, saying the list is partial", rows+` === 'console.echo|console.new' &&
		document.getElementById('services-note').textContent.endsWith('partial: 1 slot could not be listed')`, 10*time.Second)
	b.check(t)
}
