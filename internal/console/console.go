// Package console is Strata's web console, served by every meta node's
// admin HTTP at /ui/: a page (one HTML, one script, one style sheet,
// embedded in the binary, no build step) that shows the cluster's nodes,
// the slot table as a heat map, services and their instances, and charts
// of push latency and registration rate.
//
// The page carries no data: the shell under /ui/ is served to anyone, and
// everything it shows comes from meta's token-guarded /api routes, which
// it calls with the operator's admin token (asked for on the page, kept in
// the tab's sessionStorage). The charts' series come from the Collector,
// which scrapes every node's /metrics.
//
// Files: console.go (the static handler), collector.go (the series),
// metrics.go (reading a node's /metrics, histograms, the ring),
// static/ (the page).
package console

import (
	"embed"
	"net/http"
)

//go:embed static/index.html static/console.js static/console.css
var static embed.FS

// Prefix is where meta serves the console.
const Prefix = "/ui/"

// pages maps each path the console serves to its file and content type;
// any other path under Prefix is 404 (no directory listing, no fallback).
var pages = map[string]struct{ file, ctype string }{
	Prefix:                 {"static/index.html", "text/html; charset=utf-8"},
	Prefix + "console.js":  {"static/console.js", "text/javascript; charset=utf-8"},
	Prefix + "console.css": {"static/console.css", "text/css; charset=utf-8"},
}

// CSP is the console's Content-Security-Policy: scripts, styles and
// requests only from the node itself, nothing inline, no frames (also not
// the console inside another site's frame), no form posts, no plugins.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the console's static files under Prefix with strict
// headers. The files are the same for everyone and hold no data, so the
// handler asks for no credentials.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		p, ok := pages[r.URL.Path]
		if !ok {
			http.Error(w, "console: no such page", http.StatusNotFound)
			return
		}
		b, err := static.ReadFile(p.file)
		if err != nil { // embedded: cannot happen in a built binary
			http.Error(w, "console: "+err.Error(), http.StatusInternalServerError)
			return
		}
		h.Set("Content-Type", p.ctype)
		_, _ = w.Write(b)
	})
}
