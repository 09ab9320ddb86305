package admin_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-registry/strata/internal/admin"
)

func TestMux_Page_OpenUnlikeAPI_NeverUnderAPIOrDebug(t *testing.T) {
	m := admin.New("n", prometheus.NewRegistry(), func(*http.Request) error { return errors.New("no") }, func() (bool, any) { return true, nil })
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	m.Page("/ui/", ok)
	m.API("/api/v1/x", ok)
	for path, want := range map[string]int{"/ui/": http.StatusTeapot, "/ui/a.js": http.StatusTeapot, "/api/v1/x": http.StatusUnauthorized} {
		rec := httptest.NewRecorder()
		m.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("GET %s: %d, want %d", path, rec.Code, want)
		}
	}
	for _, prefix := range []string{"/api/", "/api/v1/", "/debug/", "/debug/pprof/", "/ui"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Page(%q) did not panic", prefix)
				}
			}()
			m.Page(prefix, ok)
		}()
	}
}
