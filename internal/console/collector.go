package console

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/strata-registry/strata/internal/admin"
	"github.com/strata-registry/strata/internal/clock"
	"github.com/strata-registry/strata/internal/obs"
)

// Config is the collector's settings: plain data, from meta's flags.
type Config struct {
	// Interval is the time between two scrapes of every node.
	Interval time.Duration
	// History is how far back the series reach: History/Interval points
	// are kept, the oldest dropped first.
	History time.Duration
	// Window is the span each point's push latency quantiles are computed
	// over (the pushes acked in the last Window, as rate(...[1m]) would).
	Window time.Duration
}

// DefaultConfig returns production settings: a scrape every 5 s, 10
// minutes kept (120 points), latency over the last minute.
func DefaultConfig() Config {
	return Config{Interval: 5 * time.Second, History: 10 * time.Minute, Window: time.Minute}
}

// Bounds on what one collector holds and does, whatever the cluster.
const (
	// MaxPoints caps History/Interval.
	MaxPoints = 4096
	// MaxTargets is the most nodes scraped in a round; more are left out
	// (and said so in the log).
	MaxTargets = 256
	// MaxScrapeBytes is the most of one node's /metrics that is read; a
	// larger answer is a failed scrape.
	MaxScrapeBytes = 1 << 20
	// maxBuckets is the most buckets a latency histogram may have; one
	// with more is ignored.
	maxBuckets = 64
	// parallel is how many nodes a round scrapes at once.
	parallel = 32
	// A scrape's deadline is its Interval, within these bounds: at least
	// long enough for a TLS handshake on a loaded machine, at most what a
	// round should wait for a stuck node.
	minScrapeWait = time.Second
	maxScrapeWait = 5 * time.Second
)

// ErrBadConfig wraps every configuration error.
var ErrBadConfig = errors.New("console: bad config")

// Validate checks the fields and their combination.
func (c Config) Validate() error {
	switch {
	case c.Interval <= 0:
		return fmt.Errorf("%w: scrape interval must be positive, got %v", ErrBadConfig, c.Interval)
	case c.History < c.Interval:
		return fmt.Errorf("%w: history %v is shorter than the scrape interval %v", ErrBadConfig, c.History, c.Interval)
	case c.History/c.Interval > MaxPoints:
		return fmt.Errorf("%w: history %v at one point every %v is %d points, at most %d kept", ErrBadConfig, c.History, c.Interval, c.History/c.Interval, MaxPoints)
	case c.Window < c.Interval:
		return fmt.Errorf("%w: latency window %v is shorter than the scrape interval %v", ErrBadConfig, c.Window, c.Interval)
	}
	return nil
}

// Target is a node to scrape.
type Target struct {
	ID   string
	Role string
	// Addr is the node's admin HTTP address (host:port).
	Addr string
}

// Deps are the collector's collaborators.
type Deps struct {
	// Targets returns the nodes to scrape now. It is called once per
	// round from Run's goroutine and must not block.
	Targets func() []Target
	// TLS, when set, is how scrapes verify nodes (HTTPS); nil scrapes
	// plain HTTP, for a cluster without TLS.
	TLS *tls.Config
	// Clock times the rounds; nil is the real clock.
	Clock clock.Clock
	// Logger; nil discards.
	Logger *slog.Logger
}

// Collector scrapes every node's /metrics each Interval and keeps, in a
// ring of History/Interval points, the cluster's registration rate and
// push latency quantiles, plus each node's latest scrape. Series may be
// called from any goroutine.
type Collector struct {
	cfg    Config
	deps   Deps
	clock  clock.Clock
	logger *slog.Logger
	client *http.Client

	mu     sync.Mutex
	points *ring[point]
	nodes  map[string]*nodeState
}

// New validates cfg and deps. It starts nothing; Run does.
func New(cfg Config, deps Deps) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Targets == nil {
		return nil, fmt.Errorf("%w: a Targets function is required", ErrBadConfig)
	}
	tr := &http.Transport{
		TLSClientConfig:     deps.TLS,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     2*cfg.Interval + time.Second,
		TLSHandshakeTimeout: maxScrapeWait,
	}
	return &Collector{
		cfg:    cfg,
		deps:   deps,
		clock:  clock.Or(deps.Clock),
		logger: obs.Or(deps.Logger),
		client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		points: newRing[point](int(cfg.History / cfg.Interval)),
		nodes:  map[string]*nodeState{},
	}, nil
}

// Run scrapes at once, then every Interval, until ctx ends; it returns
// nil once its scrapes have returned and their connections are closed.
func (c *Collector) Run(ctx context.Context) error {
	defer c.client.CloseIdleConnections()
	t := c.clock.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		c.round(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
	}
}

// round scrapes every target once and adds a point.
func (c *Collector) round(ctx context.Context) {
	targets := c.deps.Targets()
	if len(targets) > MaxTargets {
		c.logger.Warn("console: more nodes than one round scrapes; the rest are left out", "nodes", len(targets), "scraped", MaxTargets)
		targets = targets[:MaxTargets]
	}
	at := c.clock.Now()
	results := make([]sample, len(targets))
	var g errgroup.Group
	g.SetLimit(parallel)
	for i, tg := range targets {
		g.Go(func() error {
			results[i] = c.scrape(ctx, tg)
			return nil
		})
	}
	_ = g.Wait()
	if ctx.Err() != nil {
		return // the scrapes were cut short: no point from them
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.add(at, targets, results)
}

// scrape reads and parses one node's /metrics.
func (c *Collector) scrape(ctx context.Context, tg Target) sample {
	ctx, cancel := context.WithTimeout(ctx, min(max(c.cfg.Interval, minScrapeWait), maxScrapeWait))
	defer cancel()
	scheme := "http"
	if c.deps.TLS != nil {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+tg.Addr+"/metrics", nil)
	if err != nil {
		return sample{err: err}
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := c.client.Do(req)
	if err != nil {
		return sample{err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return sample{err: fmt.Errorf("/metrics answered %s", resp.Status)}
	}
	s, err := parseMetrics(resp.Body, MaxScrapeBytes)
	if err != nil {
		return sample{err: err}
	}
	return s
}

// nodeState is what the collector keeps of a node between rounds: its
// previous good sample (for rates) and its latest status.
type nodeState struct {
	target Target
	prev   *sample // the last successful scrape
	status NodeStatus
}

// add folds one round's samples, taken at at, into the node states and a
// new point. The caller holds c.mu.
func (c *Collector) add(at time.Time, targets []Target, results []sample) {
	pt := point{T: at}
	var regs map[string]float64
	sum := histogram{}
	seen := make(map[string]bool, len(targets))
	for i, tg := range targets {
		seen[tg.ID] = true
		ns := c.nodes[tg.ID]
		if ns == nil || ns.target != tg {
			ns = &nodeState{target: tg} // new, or moved: nothing to rate against
			c.nodes[tg.ID] = ns
		}
		r := results[i]
		ns.status.ID, ns.status.Role = tg.ID, tg.Role
		if r.err != nil {
			pt.Failed++
			ns.status.Up, ns.status.Error = false, r.err.Error()
			continue // prev stays: the next good scrape rates over both intervals
		}
		pt.Scraped++
		ns.status = NodeStatus{ID: tg.ID, Role: tg.Role, Up: true, ScrapedAt: &at, Gauges: r.gauges}
		if p := ns.prev; p != nil && at.After(p.at) {
			dt := at.Sub(p.at).Seconds()
			for kind, v := range r.regs {
				if regs == nil {
					regs = map[string]float64{}
				}
				regs[kind] += counterDelta(p.regs[kind], v) / dt
			}
			if r.hist != nil && p.hist != nil {
				sum.add(r.hist.since(p.hist))
			}
		}
		r.at = at
		r.gauges = nil // kept in status; prev needs only the counters
		ns.prev = &r
	}
	for id := range c.nodes {
		if !seen[id] {
			delete(c.nodes, id)
		}
	}
	pt.Registrations = regs
	pt.hist = sum
	// The window's pushes: this round's and those of the kept points
	// inside it.
	win := histogram{}
	win.add(sum)
	from := at.Add(-c.cfg.Window)
	c.points.each(func(p *point) {
		if p.T.After(from) {
			win.add(p.hist)
		}
	})
	pt.Pushes = win.count()
	if v, ok := win.quantile(0.5); ok {
		pt.PushP50MS = ptr(v * 1000)
	}
	if v, ok := win.quantile(0.99); ok {
		pt.PushP99MS = ptr(v * 1000)
	}
	c.points.push(pt)
}

func ptr(v float64) *float64 { return &v }

// Series is what /api/v1/console/series answers.
type Series struct {
	IntervalSeconds float64 `json:"interval_seconds"`
	WindowSeconds   float64 `json:"window_seconds"`
	// Capacity is the most points kept.
	Capacity int `json:"capacity"`
	// Points are oldest first.
	Points []point `json:"points"`
	// Nodes is each scraped node's latest status, by role then id.
	Nodes []NodeStatus `json:"nodes"`
}

// point is one round: the cluster's registration rate since the round
// before, and push latency over the window.
type point struct {
	T time.Time `json:"t"`
	// Registrations is the accepted registrations per second since the
	// previous round, by kind (publisher, subscriber), summed over the
	// sessions scraped both times; null before a session was.
	Registrations map[string]float64 `json:"registrations_per_second"`
	// PushP50MS and PushP99MS are push latency quantiles over the
	// window; null when no push was acked in it.
	PushP50MS *float64 `json:"push_p50_ms"`
	PushP99MS *float64 `json:"push_p99_ms"`
	// Pushes is how many pushes were acked in the window.
	Pushes float64 `json:"pushes_in_window"`
	// Scraped and Failed count this round's scrapes.
	Scraped int `json:"nodes_scraped"`
	Failed  int `json:"nodes_failed"`

	// hist is the pushes acked since the previous round, summed over the
	// sessions.
	hist histogram
}

// MarshalJSON adds the time as Unix milliseconds, which the page plots.
func (p point) MarshalJSON() ([]byte, error) {
	type plain point
	return json.Marshal(struct {
		plain
		TMS int64 `json:"t_ms"`
	}{plain(p), p.T.UnixMilli()})
}

// NodeStatus is a node's latest scrape.
type NodeStatus struct {
	ID   string `json:"id"`
	Role string `json:"role"`
	// Up is whether the latest scrape succeeded; Error says why not.
	Up    bool   `json:"up"`
	Error string `json:"error,omitempty"`
	// ScrapedAt is the round of the latest successful scrape.
	ScrapedAt *time.Time `json:"scraped_at,omitempty"`
	// Gauges are the figures the overview shows, from that scrape, by
	// name: connections (sessions), heap_inuse_bytes, goroutines.
	Gauges map[string]float64 `json:"gauges,omitempty"`
}

// Series returns a copy of what the collector holds.
func (c *Collector) Series() Series {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Series{
		IntervalSeconds: c.cfg.Interval.Seconds(),
		WindowSeconds:   c.cfg.Window.Seconds(),
		Capacity:        c.points.cap(),
		Points:          make([]point, 0, c.points.len()),
		Nodes:           make([]NodeStatus, 0, len(c.nodes)),
	}
	c.points.each(func(p *point) { s.Points = append(s.Points, *p) })
	for _, ns := range c.nodes {
		s.Nodes = append(s.Nodes, ns.status)
	}
	slices.SortFunc(s.Nodes, func(a, b NodeStatus) int {
		if c := strings.Compare(a.Role, b.Role); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return s
}

// ServeSeries answers Series as JSON (for a guarded admin route).
func (c *Collector) ServeSeries(w http.ResponseWriter, _ *http.Request) {
	admin.WriteJSON(w, http.StatusOK, c.Series())
}
