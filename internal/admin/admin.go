// Package admin is the admin HTTP surface every Strata role serves:
// /healthz, /readyz, /metrics, role-specific JSON under /api/, and pprof
// under /debug/pprof/. /api and /debug are for operators only (the
// Authorizer decides); health, readiness and metrics stay open for probes
// and scrapers.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ReadyFunc reports whether the node is ready and, if not, why.
type ReadyFunc func() (ok bool, detail any)

// Authorizer decides whether a request may reach /api and /debug: nil to
// serve it, an error (said to the caller) to refuse it. An error that
// wraps ErrForbidden (the request proved an identity, one that may not)
// answers 403 Forbidden; any other (no credentials, or credentials that
// prove nothing) 401 Unauthorized with a WWW-Authenticate challenge.
type Authorizer func(r *http.Request) error

// ErrForbidden marks an Authorizer's refusal of a caller who proved who
// it is: asking again with the same credentials cannot help.
var ErrForbidden = errors.New("admin: forbidden")

// Mux is an admin HTTP handler under construction. Register role routes
// with API, then serve it.
type Mux struct {
	mux  *http.ServeMux
	auth Authorizer
}

// New returns a Mux serving /healthz (always 200 with node), /readyz (from
// ready), /metrics (from reg), and pprof and the API routes to whom auth
// lets through.
func New(node string, reg *prometheus.Registry, auth Authorizer, ready ReadyFunc) *Mux {
	m := &Mux{mux: http.NewServeMux(), auth: auth}
	m.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok", "node": node})
	})
	m.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ok, detail := ready()
		code := http.StatusOK
		if !ok {
			code = http.StatusServiceUnavailable
		}
		WriteJSON(w, code, detail)
	})
	m.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	m.mux.Handle("/debug/pprof/", m.guard(pprof.Index))
	m.mux.Handle("/debug/pprof/cmdline", m.guard(pprof.Cmdline))
	m.mux.Handle("/debug/pprof/profile", m.guard(pprof.Profile))
	m.mux.Handle("/debug/pprof/symbol", m.guard(pprof.Symbol))
	m.mux.Handle("/debug/pprof/trace", m.guard(pprof.Trace))
	return m
}

// API registers a token-guarded GET handler; path must start with /api/.
func (m *Mux) API(path string, h http.HandlerFunc) {
	m.mux.Handle("GET "+path, m.guard(h))
}

// Page registers an open GET handler for the subtree prefix (ending in
// "/"): pages that carry no data of their own, such as meta's web console
// shell, whose data comes from the guarded /api routes. It panics on a
// prefix under /api/ or /debug/, which are never served unguarded.
func (m *Mux) Page(prefix string, h http.Handler) {
	if !strings.HasSuffix(prefix, "/") || strings.HasPrefix(prefix, "/api/") || strings.HasPrefix(prefix, "/debug/") {
		panic(fmt.Sprintf("admin: Page %q: want a subtree outside /api/ and /debug/", prefix))
	}
	m.mux.Handle("GET "+prefix, h)
}

// ServeHTTP implements http.Handler.
func (m *Mux) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.mux.ServeHTTP(w, r) }

func (m *Mux) guard(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := m.auth(r); err != nil {
			code := http.StatusForbidden
			if !errors.Is(err, ErrForbidden) {
				code = http.StatusUnauthorized
				w.Header().Set("WWW-Authenticate", `Bearer realm="strata admin"`)
			}
			WriteJSON(w, code, map[string]string{"error": err.Error()})
			return
		}
		h(w, r)
	})
}

// ErrMalformedAuthorization is Token's error for an Authorization header
// that is not "Bearer <token>".
var ErrMalformedAuthorization = errors.New(`admin: the Authorization header must be "Bearer <token>"`)

// Token returns the bearer token of a request: "" without an
// Authorization header, ErrMalformedAuthorization when the header is not
// "Bearer <token>" with a non-empty token.
func Token(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", nil
	}
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return "", ErrMalformedAuthorization
	}
	return tok, nil
}

// TokenIs reports whether the request carries token as its bearer token.
// An empty token never matches. The comparison is of SHA-256 digests, in
// constant time: its duration says nothing about token, not even its
// length.
func TokenIs(r *http.Request, token string) bool {
	got, err := Token(r)
	if err != nil || got == "" || token == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// Serve serves hs on ln until Shutdown, over TLS when hs has a TLSConfig;
// a closed server is not an error.
func Serve(hs *http.Server, ln net.Listener) error {
	serve := hs.Serve
	if hs.TLSConfig != nil {
		serve = func(ln net.Listener) error { return hs.ServeTLS(ln, "", "") }
	}
	if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve HTTP on %s: %w", ln.Addr(), err)
	}
	return nil
}

// Shutdown stops hs, waiting up to d for requests in progress and then
// closing them (a long pprof profile must not outlive its server).
func Shutdown(hs *http.Server, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		_ = hs.Close()
	}
}

// WriteJSON writes v as indented JSON with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
