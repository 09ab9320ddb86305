package session

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/strata-registry/strata/internal/access"
)

// A client identity (a token or a client certificate, one entry of the
// tokens file) may run many client processes, each with its own
// connection. What it may do comes from its rights (access.Perms); how
// much it may do on this session is bounded across all its connections:
// its publishers plus subscribers (MaxRegistrations), its registrations
// per second (RegisterRate), the tokens file's numbers or the session's
// defaults, and its open streams (IdentityMaxStreams). A flood from one
// identity is refused (ResourceExhausted) and costs the others nothing but
// the refusals' CPU.
//
// Its registrations are its own: publishers are stored under register IDs
// qualified by the owner's name (record.Owned), so another identity that
// names the same register ID makes a publication of its own, and client
// ids are qualified the same way (clientKey), so another identity's hello
// with the same client id is another client and replaces nothing.

// owner is one client identity's use of this session, from its first
// stream until it holds nothing here: no stream open, no registration
// (publications kept through a disconnect grace count), and a full rate
// bucket, so that forgetting it forgets nothing a new owner would not
// start with. The map thus holds the identities in use, not every
// identity that ever connected (a CA may issue any number).
type owner struct {
	name string // "" for every client of a session that runs without TLS
	// held counts the identity's publishers plus subscribers on this
	// session, over all its connections: what its quota bounds. A
	// registration that adds one reserves it (reserve) in the same step
	// as it is stored, so connections racing at the quota cannot pass it;
	// every removal (unregister, unsubscribe, disconnect, grace expiry)
	// gives it back (unreserve).
	held atomic.Int64
	// streams counts the identity's open streams (guarded by owners.mu).
	streams int

	// limiter bounds the identity's registrations per second, over all
	// its connections; perSecond is the rate (float64 bits) it is sized
	// for, so the usual call finds it sized without taking mu.
	limiter   *rate.Limiter
	perSecond atomic.Uint64
	mu        sync.Mutex // serializes resizing the limiter
}

// owners holds the identities that have connected.
type owners struct {
	// defaultRate sizes a new owner's limiter until its rights say
	// otherwise.
	defaultRate float64

	mu sync.Mutex
	by map[string]*owner
}

func newOwners(defaultRate float64) *owners {
	return &owners{defaultRate: defaultRate, by: map[string]*owner{}}
}

// acquire counts one more stream of the identity name, creating its
// owner, and returns it; it refuses (nil, false) when the identity already
// has maxStreams open (never for "", the clients of a session without
// TLS, which only the node's connection cap bounds). The caller releases
// what it acquired.
func (os *owners) acquire(name string, maxStreams int) (*owner, bool) {
	os.mu.Lock()
	defer os.mu.Unlock()
	o := os.by[name]
	if o == nil {
		o = &owner{name: name, limiter: rate.NewLimiter(rate.Limit(os.defaultRate), burstOf(os.defaultRate))}
		o.perSecond.Store(math.Float64bits(os.defaultRate))
		os.by[name] = o
	}
	if name != "" && o.streams >= maxStreams {
		return nil, false
	}
	o.streams++
	return o, true
}

// release ends a stream acquire counted.
func (os *owners) release(o *owner) {
	os.mu.Lock()
	defer os.mu.Unlock()
	o.streams--
}

// sweep forgets the owners that hold nothing any more (see owner).
// Registrations are reserved only on an open stream, which acquire
// counts under os.mu, so none can come to an owner sweep removes.
func (os *owners) sweep(now time.Time) {
	os.mu.Lock()
	defer os.mu.Unlock()
	for name, o := range os.by {
		if o.streams == 0 && o.held.Load() == 0 && o.limiter.TokensAt(now) >= float64(o.limiter.Burst()) {
			delete(os.by, name)
		}
	}
}

// len returns how many owners are kept.
func (os *owners) len() int {
	os.mu.Lock()
	defer os.mu.Unlock()
	return len(os.by)
}

// reserve counts one more registration of the identity if that keeps it
// within max, and reports whether it did.
func (o *owner) reserve(max int) bool {
	for {
		n := o.held.Load()
		if n >= int64(max) {
			return false
		}
		if o.held.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// unreserve gives back n registrations (removed ones).
func (o *owner) unreserve(n int) { o.held.Add(-int64(n)) }

// limits returns the identity's registration quota and rate from its
// current rights, or the session's defaults where they say nothing.
func (s *Server) limits(p access.Perms) (max int, perSecond float64) {
	max, perSecond = s.cfg.IdentityMaxRegistrations, s.cfg.IdentityRegisterRate
	if p.MaxRegistrations > 0 {
		max = p.MaxRegistrations
	}
	if p.RegisterRate > 0 {
		perSecond = p.RegisterRate
	}
	return max, perSecond
}

// rateFor returns the identity's registration limiter sized for
// perSecond (a reloaded tokens file resizes it); the usual call, with the
// rate unchanged, takes no lock.
func (o *owner) rateFor(perSecond float64, now time.Time) *rate.Limiter {
	if math.Float64frombits(o.perSecond.Load()) == perSecond {
		return o.limiter
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if math.Float64frombits(o.perSecond.Load()) != perSecond {
		o.limiter.SetLimitAt(now, rate.Limit(perSecond))
		o.limiter.SetBurstAt(now, burstOf(perSecond))
		o.perSecond.Store(math.Float64bits(perSecond))
	}
	return o.limiter
}

// rate returns the rate the identity's limiter is sized for.
func (o *owner) rate() float64 { return math.Float64frombits(o.perSecond.Load()) }

// burstOf is the burst an identity gets at a rate: two seconds' worth, so
// a fleet that restarts at once registers without waiting.
func burstOf(perSecond float64) int { return max(1, int(2*perSecond)) }

// clientKey is how the session knows a client: its identity's name and its
// client id (neither holds a space).
func clientKey(owner, clientID string) string {
	if owner == "" {
		return clientID
	}
	return owner + " " + clientID
}
