package session

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/catalog"
	"github.com/strata-registry/strata/internal/openapi"
)

// The route table: every route the HTTP API serves, with what the OpenAPI
// document says of it. handler registers exactly these, and /openapi.json
// is generated from them, so the two cannot disagree.

var (
	serviceParam = openapi.Param{Name: "service", In: "path", Description: "the service: the data ID its instances are published under (the default instance ID and group, as pkg/client/discovery uses)"}
	idParam      = openapi.Param{Name: "id", In: "path", Description: "the instance id, chosen by its registrant: 1 to 128 bytes of printable UTF-8 without spaces"}
	indexHeader  = map[string]string{"X-Strata-Index": "the datum version of the list (pass it as index to block for the next)"}
)

// errorResponses are the refusals every authenticated route may answer.
func errorResponses(codes ...int) []openapi.Response {
	desc := map[int]string{
		http.StatusBadRequest:            "bad input (the error says which); nothing changed",
		http.StatusUnauthorized:          "no client certificate or bearer token, or one that is not valid",
		http.StatusForbidden:             "the identity is not a client, or may not publish or subscribe under the data ID",
		http.StatusNotFound:              "the caller holds no such instance on this session (unknown, lapsed, or another identity's)",
		http.StatusConflict:              "another client (a gRPC one) of the identity holds this instance id",
		http.StatusRequestEntityTooLarge: "the body, or the encoded instance, is over its limit",
		http.StatusTooManyRequests:       "over a rate, a quota or a watch cap; Retry-After says when to retry",
		http.StatusServiceUnavailable:    "the session cannot serve it now (no slot table, no slot leader); retry",
	}
	out := make([]openapi.Response, 0, len(codes))
	for _, c := range codes {
		r := openapi.Response{Status: c, Description: desc[c], Body: HTTPError{}}
		if c == http.StatusTooManyRequests || c == http.StatusServiceUnavailable {
			r.Headers = map[string]string{"Retry-After": "seconds to wait before retrying"}
		}
		out = append(out, r)
	}
	return out
}

func (a *httpAPI) routes() []apiRoute {
	const (
		ok      = http.StatusOK
		bad     = http.StatusBadRequest
		unauth  = http.StatusUnauthorized
		forbid  = http.StatusForbidden
		missing = http.StatusNotFound
		busy    = http.StatusTooManyRequests
		unavail = http.StatusServiceUnavailable
	)
	return []apiRoute{
		{Route: openapi.Route{
			Method: http.MethodPut, Path: "/v1/services/{service}/instances/{id}", ID: "registerInstance",
			Summary:     "Register or replace an instance, with a TTL",
			Description: "The instance is held by this session, owned by the caller's identity (another identity cannot renew or remove it), and removed when its TTL lapses without a heartbeat; every subscriber, Go or HTTP, is pushed the change.",
			Params:      []openapi.Param{serviceParam, idParam}, Body: HTTPInstanceBody{},
			Responses: append([]openapi.Response{
				{Status: http.StatusCreated, Description: "registered", Body: HTTPRegistration{}},
				{Status: ok, Description: "replaced (the caller held it)", Body: HTTPRegistration{}},
			}, errorResponses(bad, unauth, forbid, http.StatusConflict, http.StatusRequestEntityTooLarge, busy, unavail)...),
		}, serve: a.register},
		{Route: openapi.Route{
			Method: http.MethodPut, Path: "/v1/services/{service}/instances/{id}/heartbeat", ID: "heartbeatInstance",
			Summary: "Renew an instance's TTL",
			Params:  []openapi.Param{serviceParam, idParam},
			Responses: append([]openapi.Response{{Status: ok, Description: "renewed", Body: HTTPRegistration{}}},
				errorResponses(bad, unauth, forbid, missing)...),
		}, serve: a.heartbeat},
		{Route: openapi.Route{
			Method: http.MethodDelete, Path: "/v1/services/{service}/instances/{id}", ID: "deregisterInstance",
			Summary: "Deregister an instance",
			Params:  []openapi.Param{serviceParam, idParam},
			Responses: append([]openapi.Response{{Status: http.StatusNoContent, Description: "removed"}},
				errorResponses(bad, unauth, forbid, missing, busy)...),
		}, serve: a.deregister},
		{Route: openapi.Route{
			Method: http.MethodGet, Path: "/v1/services/{service}/instances", ID: "listInstances",
			Summary:     "List a service's instances; with index, a blocking query",
			Description: "Every publisher's value read as a discovery instance; values that are not instances are left out and counted in skipped. With index, the answer waits until the version passes it, or for wait (then the same index), as Consul's blocking queries.",
			Params: []openapi.Param{serviceParam,
				{Name: "index", In: "query", Description: "block until the version is above this (an X-Strata-Index seen before)", Example: uint64(0)},
				{Name: "wait", In: "query", Description: "how long to block: a duration such as 30s, at most 5m (default 1m)"}},
			Responses: append([]openapi.Response{{Status: ok, Description: "the instances", Body: HTTPInstanceList{}, Headers: indexHeader}},
				errorResponses(bad, unauth, forbid, busy, unavail)...),
		}, long: true, serve: a.list},
		{Route: openapi.Route{
			Method: http.MethodGet, Path: "/v1/services/{service}/watch", ID: "watchInstances",
			Summary:     "Watch a service's instances as Server-Sent Events",
			Description: "One `instances` event per new version (id: the version; data: the list, as listInstances answers it), starting with the current one; a comment line every 15 s keeps proxies open. Last-Event-ID resumes after that version. Ends when the client goes or the session stops.",
			Params: []openapi.Param{serviceParam,
				{Name: "Last-Event-ID", In: "header", Description: "resume: send only versions above this one"}},
			Responses: append([]openapi.Response{{Status: ok, Description: "the event stream", Body: "", ContentType: "text/event-stream"}},
				errorResponses(bad, unauth, forbid, busy)...),
		}, long: true, serve: a.watch},
		{Route: openapi.Route{
			Method: http.MethodGet, Path: "/v1/services", ID: "listServices",
			Summary:     "List services with their publisher counts",
			Description: "One page, in key order, of the services the caller may subscribe to (its rights are part of the query, so next is always a key it may see); follow next until it is empty.",
			Params: []openapi.Param{
				{Name: "prefix", In: "query", Description: "only services that start with it"},
				{Name: "after", In: "query", Description: "the cursor: next of the previous page"},
				{Name: "limit", In: "query", Description: "page size, 1 to 1000 (default 100)", Example: 0}},
			Responses: append([]openapi.Response{{Status: ok, Description: "one page", Body: HTTPServiceList{}}},
				errorResponses(bad, unauth, forbid, unavail)...),
		}, serve: a.services},
		{Route: openapi.Route{
			Method: http.MethodGet, Path: "/openapi.json", ID: "openapi",
			Summary:   "This document (no credentials needed)",
			Responses: []openapi.Response{{Status: ok, Description: "the OpenAPI 3.1 document", Body: map[string]any{}}},
		}, open: true, serve: a.openAPI},
	}
}

// OpenAPIDocument returns the HTTP API's OpenAPI document, generated from
// the route table (docs/openapi.json is a copy a test keeps in step).
func OpenAPIDocument() ([]byte, error) {
	return openapi.Document(openapi.Info{
		Title:   "Strata session HTTP API",
		Version: "1",
		Description: "Register, renew, deregister and watch service instances over HTTP/JSON, on a session node's HTTP API port (9605). " +
			"Callers prove a client identity with a client certificate or Authorization: Bearer <token>. Errors are {\"error\": \"...\"}.",
	}, (&httpAPI{}).definitions())
}

// definitions returns the route table's OpenAPI definitions.
func (a *httpAPI) definitions() []openapi.Route {
	var out []openapi.Route
	for _, rt := range a.routes() {
		out = append(out, rt.Route)
	}
	return out
}

func (a *httpAPI) openAPI(w http.ResponseWriter, _ *http.Request, _ *access.Caller) error {
	doc, err := OpenAPIDocument()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(doc)
	return nil
}

// catalogQuery reads a services listing's query.
func catalogQuery(r *http.Request) (catalog.Query, error) {
	v := r.URL.Query()
	q := catalog.Query{Prefix: v.Get("prefix"), After: v.Get("after")}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil {
			return q, apiErrorf(http.StatusBadRequest, "session: limit must be a number, got %.32q", l)
		}
		q.Limit = n
	}
	if err := q.Check(); err != nil {
		return q, apiErrorf(http.StatusBadRequest, "session: %v", err)
	}
	return q, nil
}

// apiMetrics are the HTTP API's, on the session's registry.
type apiMetrics struct {
	requests                                             *prometheus.CounterVec
	registrations, heartbeats, deregistrations, expiries prometheus.Counter
	watchesRefused                                       prometheus.Counter
	leases, watchers                                     *prometheus.Desc
	api                                                  *httpAPI
}

func newAPIMetrics() *apiMetrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_session_http_" + name, Help: help})
	}
	return &apiMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_session_http_requests_total",
			Help: "HTTP API requests answered, by operation (the OpenAPI operationId) and status code.",
		}, []string{"operation", "code"}),
		registrations:   c("registrations_total", "HTTP instances registered or replaced."),
		heartbeats:      c("heartbeats_total", "HTTP instance leases renewed."),
		deregistrations: c("deregistrations_total", "HTTP instances deregistered by their registrant."),
		expiries:        c("expiries_total", "HTTP instances removed because their lease lapsed."),
		watchesRefused:  c("watches_refused_total", "Blocking queries and event streams refused at the node's or an identity's watch cap."),
		leases:          prometheus.NewDesc("strata_session_http_instances", "HTTP instances held (leases running).", nil, nil),
		watchers:        prometheus.NewDesc("strata_session_http_watchers", "Blocking queries and event streams open.", nil, nil),
	}
}

func (m *apiMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	for _, c := range []prometheus.Counter{m.registrations, m.heartbeats, m.deregistrations, m.expiries, m.watchesRefused} {
		c.Describe(ch)
	}
	ch <- m.leases
	ch <- m.watchers
}

func (m *apiMetrics) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	for _, c := range []prometheus.Counter{m.registrations, m.heartbeats, m.deregistrations, m.expiries, m.watchesRefused} {
		c.Collect(ch)
	}
	ch <- prometheus.MustNewConstMetric(m.leases, prometheus.GaugeValue, float64(m.api.leases.count()))
	ch <- prometheus.MustNewConstMetric(m.watchers, prometheus.GaugeValue, float64(m.api.watches.watchers()))
}
