package session

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/strata-registry/strata/internal/identity"
)

// A client identity (a token or a client certificate, one entry of the
// tokens file) may run many client processes, each with its own
// connection. What it may do comes from its rights (identity.Perms); how
// much it may do on this session is bounded across all its connections:
// its publishers plus subscribers (MaxRegistrations) and its registrations
// per second (RegisterRate), the tokens file's numbers or the session's
// defaults. A flood from one identity is refused (ResourceExhausted) and
// costs the others nothing but the refusals' CPU.
//
// Its registrations are its own: publishers are stored under register IDs
// qualified by the owner's name (record.Owned), so another identity that
// names the same register ID makes a publication of its own, and client
// ids are qualified the same way (clientKey), so another identity's hello
// with the same client id is another client and replaces nothing.

// owner is one client identity's use of this session.
type owner struct {
	name    string // "" for every client of a session that runs without TLS
	limiter *rate.Limiter
	// subs counts the identity's subscribers over all its connections.
	subs atomic.Int64

	mu   sync.Mutex
	last identity.Perms // the rights the limiter was sized from
}

// owners holds the owners that have connected.
type owners struct {
	mu sync.Mutex
	by map[string]*owner
}

func newOwners() *owners { return &owners{by: map[string]*owner{}} }

// get returns the owner named name, creating it.
func (os *owners) get(name string) *owner {
	os.mu.Lock()
	defer os.mu.Unlock()
	o := os.by[name]
	if o == nil {
		o = &owner{name: name}
		os.by[name] = o
	}
	return o
}

// limits returns the identity's registration quota and rate from its
// current rights, or the session's defaults where they say nothing.
func (s *Server) limits(p identity.Perms) (max int, perSecond float64) {
	max, perSecond = s.cfg.IdentityMaxRegistrations, s.cfg.IdentityRegisterRate
	if p.MaxRegistrations > 0 {
		max = p.MaxRegistrations
	}
	if p.RegisterRate > 0 {
		perSecond = p.RegisterRate
	}
	return max, perSecond
}

// rateFor returns the identity's registration limiter, sized from its
// current rights (a reloaded tokens file resizes it).
func (o *owner) rateFor(s *Server, p identity.Perms, now time.Time) *rate.Limiter {
	_, perSecond := s.limits(p)
	o.mu.Lock()
	if o.limiter == nil {
		o.limiter = rate.NewLimiter(rate.Limit(perSecond), burstOf(perSecond))
	} else if o.last.RegisterRate != p.RegisterRate {
		o.limiter.SetLimitAt(now, rate.Limit(perSecond))
		o.limiter.SetBurstAt(now, burstOf(perSecond))
	}
	o.last = p
	defer o.mu.Unlock()
	return o.limiter
}

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
