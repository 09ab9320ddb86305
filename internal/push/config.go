package push

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-registry/strata/internal/clock"
)

// Config is the engine's settings: plain data, filled from flags.
type Config struct {
	// FetchWorkers bounds the fetches running at once across keys.
	FetchWorkers int
	// FetchTimeout bounds one Fetch call.
	FetchTimeout time.Duration
	// Coalesce, when positive, is the least time between the starts of two
	// fetches of one key: a follow-up that would start sooner waits for
	// it, so more changes merge into it. A key that has been quiet for
	// Coalesce is still fetched at once. 0 (the default) never delays.
	Coalesce time.Duration
	// RetryBase is the first wait after a failed fetch; each further
	// failure doubles it up to RetryMax. A newer change notice cuts the
	// wait short.
	RetryBase time.Duration
	// AckTimeout is how long a push waits for its ack before it is sent
	// again; each further retry doubles the wait up to RetryMax.
	AckTimeout time.Duration
	// RetryMax caps both backoffs.
	RetryMax time.Duration
	// AckDelay is how long a client may hold a push's ack to send it with
	// later acks, one write for many pushes (the session tells its
	// clients in the welcome). 0 asks for an ack per push at once. At most
	// a quarter of AckTimeout, so a held ack never makes a push go again.
	AckDelay time.Duration
	// MaxInflightBytes caps the bytes of pushes sent and not yet acked on
	// one connection (retries count again). A push that would pass it
	// disconnects the client, unless nothing else is in flight there (so a
	// single datum larger than the cap can still be delivered).
	MaxInflightBytes int64
	// Tick is the resolution of the retry and coalesce timers: they fire
	// up to Tick late. Pushes caused by notices never wait for a tick.
	Tick time.Duration
}

// DefaultConfig returns production defaults.
func DefaultConfig() Config {
	return Config{
		FetchWorkers:     32,
		FetchTimeout:     5 * time.Second,
		RetryBase:        100 * time.Millisecond,
		AckTimeout:       3 * time.Second,
		RetryMax:         30 * time.Second,
		AckDelay:         20 * time.Millisecond,
		MaxInflightBytes: 4 << 20,
		Tick:             10 * time.Millisecond,
	}
}

// TestConfig returns short timings for in-process tests.
func TestConfig() Config {
	c := DefaultConfig()
	c.FetchWorkers = 4
	c.FetchTimeout = 2 * time.Second
	c.RetryBase = 20 * time.Millisecond
	c.AckTimeout = 200 * time.Millisecond
	c.RetryMax = time.Second
	c.MaxInflightBytes = 1 << 20
	c.Tick = 5 * time.Millisecond
	return c
}

// ErrBadConfig wraps every configuration error.
var ErrBadConfig = errors.New("push: bad config")

// Validate checks every field and the fields against each other.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(format, args...))
	}
	if c.FetchWorkers < 1 {
		return bad("fetch workers must be at least 1, got %d", c.FetchWorkers)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"fetch timeout", c.FetchTimeout}, {"retry base", c.RetryBase}, {"ack timeout", c.AckTimeout},
		{"retry max", c.RetryMax}, {"tick", c.Tick},
	} {
		if d.v <= 0 {
			return bad("%s must be positive, got %v", d.name, d.v)
		}
	}
	if c.AckDelay < 0 || c.AckDelay > c.AckTimeout/4 {
		return bad("ack delay must be between 0 and a quarter of the ack timeout %v, got %v", c.AckTimeout, c.AckDelay)
	}
	if c.Coalesce < 0 {
		return bad("coalesce must not be negative, got %v", c.Coalesce)
	}
	if c.RetryMax < c.RetryBase || c.RetryMax < c.AckTimeout {
		return bad("retry max %v must be at least retry base %v and ack timeout %v", c.RetryMax, c.RetryBase, c.AckTimeout)
	}
	if c.MaxInflightBytes < 1 {
		return bad("max in-flight bytes must be positive, got %d", c.MaxInflightBytes)
	}
	return nil
}

// Deps are the engine's live collaborators.
type Deps struct {
	// Fetcher reads datums (required).
	Fetcher Fetcher
	// Clock drives retry, ack and coalesce timers and latency; nil means
	// the real clock.
	Clock clock.Clock
	// Logger; nil discards.
	Logger *slog.Logger
	// Registerer receives the engine's metrics (strata_push_*); nil
	// registers nothing. Pass the node's own registry, never the global one.
	Registerer prometheus.Registerer
}
