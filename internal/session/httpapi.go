package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/admin"
	"github.com/strata-registry/strata/internal/openapi"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/record"
)

// The HTTP/JSON API (docs/architecture.md, "HTTP API"): for services not
// written in Go, on its own port (--http-api-listen, 9605). It is a second
// front door to the same session: an HTTP-registered instance is a
// publisher held by this session (httpapi_leases.go), owned by the
// caller's identity and kept alive by its heartbeats; a watch is a
// subscriber of the session's push engine shared by every HTTP watcher of
// the service here (httpapi_watch.go). Callers prove the identities the
// gRPC client port knows (node.HTTPCaller) and meet the same rights,
// rates and quotas. The routes are the table below; /openapi.json is
// generated from it (internal/openapi).

// httpAPI is the session's HTTP/JSON API.
type httpAPI struct {
	s       *Server
	metrics *apiMetrics
	leases  leases
	watches watchHub
}

func newHTTPAPI(s *Server) *httpAPI {
	a := &httpAPI{s: s, metrics: newAPIMetrics()}
	a.metrics.api = a
	a.leases.init()
	a.watches.init(a)
	return a
}

// HTTPInstanceSpec is what describes an instance: the fields of
// pkg/client/discovery's Instance (and its record), and its state.
type HTTPInstanceSpec struct {
	Addr     string            `json:"addr" doc:"where the instance serves: host:port with a non-empty host and a numeric port"`
	Weight   int               `json:"weight,omitempty" doc:"share of traffic, 0 to 2147483647; 0 (or none) is stored as 1"`
	Zone     string            `json:"zone,omitempty" doc:"availability zone, at most 64 bytes"`
	Metadata map[string]string `json:"metadata,omitempty" doc:"free-form; the whole encoded instance must fit one record value (1 MiB)"`
	State    string            `json:"state,omitempty" enum:"serving,draining,disabled" doc:"serving (the default when empty), draining or disabled"`
}

// HTTPInstanceBody is the body of a registration.
type HTTPInstanceBody struct {
	HTTPInstanceSpec
	TTL string `json:"ttl,omitempty" doc:"the lease, a duration such as 30s (5s to 1h; default 30s): renew it with PUT .../heartbeat before it lapses"`
}

// HTTPInstance is one instance of a service as the API shows it.
type HTTPInstance struct {
	ID string `json:"id" doc:"the instance id its registrant chose (a Go client's: its register id)"`
	HTTPInstanceSpec
}

// HTTPRegistration answers a registration or a heartbeat.
type HTTPRegistration struct {
	Service   string       `json:"service"`
	Instance  HTTPInstance `json:"instance"`
	TTL       string       `json:"ttl"`
	ExpiresAt time.Time    `json:"expires_at" doc:"when the instance is removed unless a heartbeat comes first (the session's clock)"`
}

// HTTPInstanceList is a service's instances at one version.
type HTTPInstanceList struct {
	Service   string         `json:"service"`
	Index     uint64         `json:"index" doc:"the datum version; also the X-Strata-Index header"`
	Instances []HTTPInstance `json:"instances"`
	Skipped   int            `json:"skipped" doc:"records of the service that are not instances (not discovery JSON), left out"`
}

// HTTPService is one service of a listing.
type HTTPService struct {
	Service    string `json:"service" doc:"the data ID"`
	InstanceID string `json:"instance_id"`
	Group      string `json:"group"`
	Publishers int    `json:"publishers"`
}

// HTTPServiceList is one page of services.
type HTTPServiceList struct {
	Services []HTTPService `json:"services"`
	Next     string        `json:"next" doc:"the after cursor of the next page; empty on the last"`
	Missing  []uint32      `json:"missing_slots,omitempty" doc:"slots that could not be listed (no leader, migrating): the page is partial"`
}

// HTTPError is every error's body.
type HTTPError struct {
	Error string `json:"error"`
}

// apiError is a handler's refusal: the status and what was wrong.
type apiError struct {
	code       int
	msg        string
	retryAfter int // seconds; 0: no Retry-After
}

func (e *apiError) Error() string { return e.msg }

func apiErrorf(code int, format string, args ...any) *apiError {
	return &apiError{code: code, msg: fmt.Sprintf(format, args...)}
}

// httpStatus turns what the session's shared checks return (gRPC
// statuses, record errors) into an HTTP answer.
func httpStatus(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	if errors.Is(err, errTaken) {
		return &apiError{code: http.StatusConflict, msg: status.Convert(err).Message()}
	}
	switch {
	case errors.Is(err, record.ErrTooLarge):
		return &apiError{code: http.StatusRequestEntityTooLarge, msg: err.Error()}
	case errors.Is(err, record.ErrInvalid):
		return &apiError{code: http.StatusBadRequest, msg: err.Error()}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// The data tier did not answer in time, or the session is
		// stopping: worth asking again, here or elsewhere.
		return &apiError{code: http.StatusServiceUnavailable, msg: "session: " + err.Error() + "; retry", retryAfter: 1}
	}
	st := status.Convert(err)
	switch st.Code() {
	case codes.InvalidArgument:
		return &apiError{code: http.StatusBadRequest, msg: st.Message()}
	case codes.PermissionDenied:
		return &apiError{code: http.StatusForbidden, msg: st.Message()}
	case codes.ResourceExhausted:
		return &apiError{code: http.StatusTooManyRequests, msg: st.Message(), retryAfter: 1}
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return &apiError{code: http.StatusServiceUnavailable, msg: st.Message(), retryAfter: 1}
	}
	return &apiError{code: http.StatusInternalServerError, msg: st.Message()}
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	if e.code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="strata"`)
	}
	admin.WriteJSON(w, e.code, HTTPError{Error: e.msg})
}

// apiRoute is one route: its OpenAPI definition (method, path,
// parameters, bodies) and its handler. serve runs after authentication,
// with the caller (a client identity, or the insecure caller); it writes
// its answer, or returns the error to answer.
type apiRoute struct {
	openapi.Route
	// open routes need no credentials (the document itself).
	open bool
	// long routes wait (blocking queries, event streams): no overall
	// write deadline, they set their own.
	long  bool
	serve func(w http.ResponseWriter, r *http.Request, c *access.Caller) error
}

// apiIOTimeout bounds reading a request's body and writing an answer
// (each event, on a stream): a peer that stops reading or sending loses
// its connection, not a goroutine for ever.
const apiIOTimeout = 30 * time.Second

// maxAPIBody is the largest request body: one instance record
// (record.MaxValueBytes) with room for the JSON around it. A larger body
// is refused (413) as it arrives, before it is read whole.
const maxAPIBody = record.MaxValueBytes + 64<<10

// handler returns the API's handler: every route of the table, and a
// JSON 404 for the rest.
func (a *httpAPI) handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range a.routes() {
		mux.Handle(rt.Method+" "+rt.Path, a.wrap(rt))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, apiErrorf(http.StatusNotFound, "no route %s %s (the routes: GET /openapi.json)", r.Method, r.URL.Path))
	})
	return mux
}

// wrap authenticates (401 without credentials; 403 for an identity that
// is not a client), bounds the request's I/O and body, and answers what
// the route returns. Every answer is counted by route and code.
func (a *httpAPI) wrap(rt apiRoute) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &statusWriter{ResponseWriter: w}
		defer func() { a.metrics.requests.WithLabelValues(rt.ID, strconv.Itoa(rw.code())).Inc() }()
		// Long routes read no body and set their own write deadlines; a read
		// deadline on them would end a blocking query or a stream on
		// HTTP/1.1 (the server's background read fails and cancels it).
		if !rt.long {
			rc := http.NewResponseController(w)
			_ = rc.SetReadDeadline(time.Now().Add(apiIOTimeout))
			_ = rc.SetWriteDeadline(time.Now().Add(apiIOTimeout))
		}
		r.Body = http.MaxBytesReader(rw, r.Body, maxAPIBody)
		var c *access.Caller
		if !rt.open {
			var err error
			if c, err = a.s.HTTPCaller(r); err != nil {
				writeAPIError(rw, apiErrorf(http.StatusUnauthorized, "session: %v", err))
				return
			}
			if !c.Insecure && c.ID.Role != identity.RoleClient {
				writeAPIError(rw, apiErrorf(http.StatusForbidden, "session: %s is not a client: the HTTP API serves client identities only", c.ID))
				return
			}
		}
		if err := rt.serve(rw, r, c); err != nil {
			e := httpStatus(err)
			if rw.wrote {
				return // a stream that already answered: nothing more to say
			}
			writeAPIError(rw, e)
		}
	})
}

// statusWriter remembers the status an answer had.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer
// (flushes and deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if !w.wrote {
		return http.StatusOK
	}
	return w.status
}

// readBody decodes a request's JSON body into v: one JSON value, no field
// v does not have, within maxAPIBody.
func readBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	if err == nil {
		if _, rest := io.Copy(io.Discard, r.Body); rest != nil {
			err = rest
		}
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return apiErrorf(http.StatusRequestEntityTooLarge, "session: the body is over %d bytes", tooBig.Limit)
	case errors.Is(err, io.EOF):
		return apiErrorf(http.StatusBadRequest, "session: the body is empty; a JSON object is required")
	case err != nil:
		return apiErrorf(http.StatusBadRequest, "session: the body is not a valid instance: %v", err)
	}
	return nil
}

// serviceKey returns the dataInfoID of service as pkg/client/discovery
// forms it (the data ID is the service; the default instance ID and
// group), so Go watchers and registrants meet HTTP ones. It refuses a
// service name no publisher could carry (400).
func serviceKey(service string) (string, error) {
	key := record.DataInfoID(service, "", "")
	if _, _, _, err := record.ParseDataInfoID(key); err != nil {
		return "", apiErrorf(http.StatusBadRequest, "session: service: %v", err)
	}
	if strings.Contains(service, record.Separator) {
		return "", apiErrorf(http.StatusBadRequest, "session: service %.64q holds %q, which separates the parts of a key", service, record.Separator)
	}
	return key, nil
}

// instanceRecord is the discovery record format (pkg/client/discovery,
// Instance with its "v"), as the session writes and reads it. The server
// cannot import the SDK (its own module); the end-to-end tests check that
// the two read each other's records.
type instanceRecord struct {
	V int `json:"v"`
	HTTPInstanceSpec
}

// maxInstanceWeight is discovery.MaxWeight.
const maxInstanceWeight = 1<<31 - 1

// instanceStates are the states an instance may be registered in ("" is
// serving).
var instanceStates = []string{"", "serving", "draining", "disabled"}

// check validates an instance as discovery.Register does (addr, weight)
// plus its state and zone, and stores weight 0 as 1.
func (in *instanceRecord) check() error {
	host, port, err := net.SplitHostPort(in.Addr)
	if err == nil && host == "" {
		err = errors.New("missing host")
	}
	if n, perr := strconv.Atoi(port); err == nil && (perr != nil || n < 1 || n > 65535) {
		err = fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	if err != nil {
		return fmt.Errorf("instance address %q: %v", in.Addr, err)
	}
	if in.Weight < 0 || in.Weight > maxInstanceWeight {
		return fmt.Errorf("instance weight %d is outside 0..%d", in.Weight, maxInstanceWeight)
	}
	if in.Weight == 0 {
		in.Weight = 1
	}
	if !slices.Contains(instanceStates, in.State) {
		return fmt.Errorf("instance state %q: want serving, draining or disabled", in.State)
	}
	if in.State == "serving" {
		in.State = "" // discovery leaves serving out of the record
	}
	if len(in.Zone) > record.MaxZoneBytes {
		return fmt.Errorf("zone is %d bytes, at most %d allowed", len(in.Zone), record.MaxZoneBytes)
	}
	return nil
}

// decodeInstance reads a record value published from zone as discovery's
// watchers do: JSON with a format version from 1 on, a valid address and
// weight; the zone defaults to the publisher's. ok is false for a value
// that is not an instance. States it does not know are shown as they are.
func decodeInstance(id string, value []byte, zone string) (HTTPInstance, bool) {
	var in instanceRecord
	if json.Unmarshal(value, &in) != nil || in.V < 1 {
		return HTTPInstance{}, false
	}
	state := in.State
	in.State = ""
	if in.check() != nil {
		return HTTPInstance{}, false
	}
	if in.Zone == "" {
		in.Zone = zone
	}
	in.State = state
	return HTTPInstance{ID: id, HTTPInstanceSpec: in.HTTPInstanceSpec}, true
}
