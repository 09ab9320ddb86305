// Package admin is the admin HTTP surface every Strata role serves:
// /healthz, /readyz, /metrics, role-specific JSON under /api/, and pprof
// under /debug/pprof/. With a token configured, /api and /debug require
// "Authorization: Bearer <token>"; health, readiness and metrics stay open
// for probes and scrapers.
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ReadyFunc reports whether the node is ready and, if not, why.
type ReadyFunc func() (ok bool, detail any)

// Mux is an admin HTTP handler under construction. Register role routes
// with API, then serve it.
type Mux struct {
	mux   *http.ServeMux
	token string
}

// New returns a Mux serving /healthz (always 200 with node), /readyz (from
// ready), /metrics (from reg) and pprof. token may be empty.
func New(node string, reg *prometheus.Registry, token string, ready ReadyFunc) *Mux {
	m := &Mux{mux: http.NewServeMux(), token: token}
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

// ServeHTTP implements http.Handler.
func (m *Mux) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.mux.ServeHTTP(w, r) }

func (m *Mux) guard(h http.HandlerFunc) http.Handler {
	if m.token == "" {
		return h
	}
	want := []byte("Bearer " + m.token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			WriteJSON(w, http.StatusUnauthorized, map[string]string{"error": "admin token required (Authorization: Bearer <token>)"})
			return
		}
		h(w, r)
	})
}

// Serve serves hs on ln until Shutdown; a closed server is not an error.
func Serve(hs *http.Server, ln net.Listener) error {
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
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
