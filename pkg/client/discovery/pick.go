package discovery

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"sort"
	"sync"
	"time"
)

// ErrNoInstance is what Pick returns (wrapped, with the reason) when the
// last Set holds no serving instance: none registered, or every one
// draining, disabled or in a state this version does not know.
var ErrNoInstance = errors.New("discovery: no instance to pick")

// Defaults of the Picker's outlier ejection (see NewPicker).
const (
	// DefaultEjectAfter is how many consecutive failures eject an instance.
	DefaultEjectAfter = 3
	// DefaultEjectionTime is how long a first ejection lasts.
	DefaultEjectionTime = 30 * time.Second
	// DefaultMaxEjectionTime caps the ejection time, which doubles with
	// each repeat ejection.
	DefaultMaxEjectionTime = 5 * time.Minute
	// DefaultMaxEjectedShare is the largest share of the serving instances
	// that may be ejected at once.
	DefaultMaxEjectedShare = 0.5
)

// PickerOption configures a Picker (see NewPicker).
type PickerOption func(*pickerConfig)

type pickerConfig struct {
	zone       string
	ejectAfter int
	ejectFor   time.Duration
	ejectMax   time.Duration
	maxShare   float64
	now        func() time.Time
	rnd        *rand.Rand
}

// WithPreferredZone makes Pick prefer instances in zone (usually the
// caller's own, as given to client.WithZone): it draws from the serving,
// non-ejected instances of zone, and from those of every zone only when
// zone has none. There is no minimum share that triggers the fallback
// earlier: one available local instance takes all the traffic, so prefer a
// zone only where its instances can carry the zone's callers. Default:
// none, every zone alike.
func WithPreferredZone(zone string) PickerOption {
	return func(c *pickerConfig) { c.zone = zone }
}

// WithEjectAfter sets how many consecutive failures (Report with an error)
// eject an instance (default DefaultEjectAfter); 0 turns ejection off.
func WithEjectAfter(failures int) PickerOption {
	return func(c *pickerConfig) { c.ejectAfter = failures }
}

// WithEjectionTime sets how long an ejection lasts: base the first time,
// doubling with each repeat ejection up to limit (defaults
// DefaultEjectionTime and DefaultMaxEjectionTime). A repeat is counted
// down by one for every base of service since the instance came back, so
// an instance that stays well long enough starts again from base.
func WithEjectionTime(base, limit time.Duration) PickerOption {
	return func(c *pickerConfig) { c.ejectFor, c.ejectMax = base, limit }
}

// WithMaxEjectedShare sets the largest share, 0 to 1, of the serving
// instances that may be ejected at once (default DefaultMaxEjectedShare,
// so one of two instances, one of three, two of four...). An instance
// that reaches its failures while the share is used up stays in, and is
// ejected by a later failure once there is room. At 1 every instance may
// be ejected; Pick then draws among the ejected ones rather than fail.
func WithMaxEjectedShare(share float64) PickerOption {
	return func(c *pickerConfig) { c.maxShare = share }
}

// WithClock sets the Picker's clock (default time.Now), for tests.
func WithClock(now func() time.Time) PickerOption {
	return func(c *pickerConfig) { c.now = now }
}

// WithRandSeed makes the Picker's draws the same on every run, for tests
// (default: seeded at random).
func WithRandSeed(seed uint64) PickerOption {
	return func(c *pickerConfig) { c.rnd = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }
}

// Picker chooses one instance of a service per call: weighted random
// among the serving instances of the last Set (Update or Follow), in the
// preferred zone when it has any (WithPreferredZone), leaving out those
// ejected after failing (Report). Safe for concurrent use; it starts no
// goroutine and holds one entry per serving address of the last Set.
//
// Outlier ejection: an instance that fails WithEjectAfter times in a row
// is left out for WithEjectionTime (doubling on repeats, capped), but
// never more than WithMaxEjectedShare of the serving instances at once,
// so a fault on the caller's side (its own network, say) cannot empty the
// list. An ejected instance comes back when its time is up; reports about
// it meanwhile (calls that were already in flight) change nothing.
type Picker struct {
	cfg   pickerConfig
	ready chan struct{} // closed by the first Update
	once  sync.Once

	mu         sync.Mutex
	rnd        *rand.Rand
	listed     int                // distinct addresses in the last Set
	all        pool               // its serving instances
	local      pool               // those in cfg.zone
	health     map[string]*health // by address, one per member of all
	ejected    int                // entries of health with until set
	nextReturn time.Time          // the earliest until among them
}

// pool is a list of instances to draw from, with the running sum of their
// weights.
type pool struct {
	members []*member
	cum     []int64 // cum[i]: the weights of members[0..i]
}

type member struct {
	inst   Instance
	weight int64
	h      *health
}

// health is what the Picker knows of one address, kept across Sets while
// the address is listed as serving.
type health struct {
	failures  int       // consecutive, since the last success or return
	ejections int       // recent ejections, counted down while it serves
	until     time.Time // ejected until then; zero: not ejected
	returned  time.Time // when it last came back from an ejection
}

// NewPicker returns a Picker with no instances yet: Pick waits for the
// first Update (or Set from Follow). Errors: client.ErrInvalidArgument for
// an option out of range (negative failures, an ejection time that is not
// positive or a limit below it, a share outside 0..1).
func NewPicker(opts ...PickerOption) (*Picker, error) {
	cfg := pickerConfig{
		ejectAfter: DefaultEjectAfter,
		ejectFor:   DefaultEjectionTime,
		ejectMax:   DefaultMaxEjectionTime,
		maxShare:   DefaultMaxEjectedShare,
		now:        time.Now,
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	switch {
	case cfg.ejectAfter < 0:
		return nil, invalidf("picker: %d failures to eject after is negative", cfg.ejectAfter)
	case cfg.ejectFor <= 0 || cfg.ejectMax < cfg.ejectFor:
		return nil, invalidf("picker: ejection time %v up to %v: want 0 < base <= limit", cfg.ejectFor, cfg.ejectMax)
	case !(cfg.maxShare >= 0 && cfg.maxShare <= 1):
		return nil, invalidf("picker: max ejected share %v is outside 0..1", cfg.maxShare)
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	rnd := cfg.rnd
	if rnd == nil {
		rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return &Picker{cfg: cfg, ready: make(chan struct{}), rnd: rnd, health: map[string]*health{}}, nil
}

// SetSource is where Follow reads Sets from; a *Watcher is one.
type SetSource interface {
	// Next blocks until there is a Set newer than the last it returned
	// (the first call: the current one) and returns it, or an error when
	// ctx ends or the source is done.
	Next(ctx context.Context) (Set, error)
}

var _ SetSource = (*Watcher)(nil)

// Follow feeds every Set of src to Update until src fails or ctx ends,
// and returns that error. Run it in a goroutine of your own, next to the
// calls to Pick:
//
//	go func() { _ = p.Follow(ctx, w) }() // ends with ctx or w.Close
func (p *Picker) Follow(ctx context.Context, src SetSource) error {
	for {
		set, err := src.Next(ctx)
		if err != nil {
			return err
		}
		p.Update(set)
	}
}

// Update makes set the list Pick draws from. Of each address only one
// instance counts (Set.PerAddress), and only if it is serving; a Weight
// below 1 counts as DefaultWeight, one above MaxWeight as MaxWeight. What
// Update keeps of the failures and ejections of an address lasts while
// the address stays listed as serving. Metadata is copied.
func (p *Picker) Update(set Set) {
	insts := set.PerAddress()
	p.mu.Lock()
	defer p.mu.Unlock()
	kept := make(map[string]*health, len(insts))
	var all, local pool
	for _, inst := range insts {
		if !inst.State.Serving() {
			continue
		}
		h := p.health[inst.Addr]
		if h == nil {
			h = &health{}
		}
		kept[inst.Addr] = h
		inst.Metadata = maps.Clone(inst.Metadata)
		m := &member{inst: inst, weight: int64(min(max(inst.Weight, DefaultWeight), MaxWeight)), h: h}
		all.add(m)
		if p.cfg.zone != "" && inst.Zone == p.cfg.zone {
			local.add(m)
		}
	}
	p.listed, p.all, p.local, p.health = len(insts), all, local, kept
	p.ejected, p.nextReturn = 0, time.Time{}
	for _, h := range kept {
		p.countEjectedLocked(h)
	}
	p.once.Do(func() { close(p.ready) })
}

// Pick returns one instance: drawn at random with chances in proportion
// to Weight, from the serving, non-ejected instances of the preferred zone,
// or of every zone when that zone has none. It waits only for the first
// Set, bounded by ctx; after that it never blocks.
//
// The instance shares its Metadata with other picks: read it, do not
// change it. Tell the Picker how the call went with Report.
//
// Errors: ErrNoInstance (wrapped) when no instance is serving; ctx's
// error, wrapped, when ctx ends before the first Set.
func (p *Picker) Pick(ctx context.Context) (Instance, error) {
	select {
	case <-p.ready:
	default:
		select {
		case <-p.ready:
		case <-ctx.Done():
			return Instance{}, fmt.Errorf("discovery: picker waiting for its first instance list: %w", ctx.Err())
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.returnDueLocked(p.cfg.now())
	if m := p.drawLocked(&p.local); m != nil {
		return m.inst, nil
	}
	if m := p.drawLocked(&p.all); m != nil {
		return m.inst, nil
	}
	if len(p.all.members) > 0 {
		// Every serving instance is ejected (WithMaxEjectedShare(1)): one
		// that failed is still better than none.
		return p.all.draw(p.rnd).inst, nil
	}
	if p.listed == 0 {
		return Instance{}, fmt.Errorf("%w: the service has no instances", ErrNoInstance)
	}
	return Instance{}, fmt.Errorf("%w: none of the service's %d instances is serving (draining, disabled, or a state this client does not know)",
		ErrNoInstance, p.listed)
}

// Report tells the Picker how a call to inst (as Pick returned it) went:
// err nil for a success, an error for a failure that says the instance
// is unwell (a refused connection, codes.Unavailable, a timeout). Errors
// that are the caller's own (a bad request, NotFound) should be reported
// as nil or not at all. Reports about an address that is not listed as
// serving, or that is ejected, change nothing.
func (p *Picker) Report(inst Instance, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.health[inst.Addr]
	if h == nil {
		return
	}
	now := p.cfg.now()
	p.returnDueLocked(now)
	if !h.until.IsZero() {
		return
	}
	if err == nil {
		h.failures = 0
		return
	}
	h.failures++
	if p.cfg.ejectAfter == 0 || h.failures < p.cfg.ejectAfter {
		return
	}
	// The floor: at most maxShare of the serving instances out at once
	// (the small term keeps 0.29*100 from rounding down to 28).
	if p.ejected+1 > int(p.cfg.maxShare*float64(len(p.all.members))+1e-9) {
		return
	}
	p.ejectLocked(h, now)
}

// ejectLocked ejects h from now on, for longer the more often it was
// ejected lately.
func (p *Picker) ejectLocked(h *health, now time.Time) {
	if !h.returned.IsZero() {
		h.ejections = max(0, h.ejections-int(now.Sub(h.returned)/p.cfg.ejectFor))
	}
	h.ejections++
	d := p.cfg.ejectFor
	for i := 1; i < h.ejections && d < p.cfg.ejectMax; i++ {
		if d > p.cfg.ejectMax/2 {
			d = p.cfg.ejectMax
		} else {
			d *= 2
		}
	}
	h.until = now.Add(min(d, p.cfg.ejectMax))
	h.failures = 0
	p.countEjectedLocked(h)
}

// countEjectedLocked counts h in ejected and nextReturn if it is ejected.
func (p *Picker) countEjectedLocked(h *health) {
	if h.until.IsZero() {
		return
	}
	if p.ejected == 0 || h.until.Before(p.nextReturn) {
		p.nextReturn = h.until
	}
	p.ejected++
}

// returnDueLocked brings back the instances whose ejection is over.
func (p *Picker) returnDueLocked(now time.Time) {
	if p.ejected == 0 || now.Before(p.nextReturn) {
		return
	}
	p.ejected, p.nextReturn = 0, time.Time{}
	for _, h := range p.health {
		if !h.until.IsZero() && !now.Before(h.until) {
			h.until, h.returned, h.failures = time.Time{}, now, 0
		}
		p.countEjectedLocked(h)
	}
}

// drawLocked draws a member of pl that is not ejected, or returns nil if
// there is none.
func (p *Picker) drawLocked(pl *pool) *member {
	if len(pl.members) == 0 {
		return nil
	}
	if p.ejected == 0 {
		return pl.draw(p.rnd)
	}
	var total int64
	for _, m := range pl.members {
		if m.h.until.IsZero() {
			total += m.weight
		}
	}
	if total == 0 {
		return nil
	}
	r := p.rnd.Int64N(total)
	for _, m := range pl.members {
		if !m.h.until.IsZero() {
			continue
		}
		if r < m.weight {
			return m
		}
		r -= m.weight
	}
	return nil // not reached: r < total
}

func (pl *pool) add(m *member) {
	var sum int64
	if n := len(pl.cum); n > 0 {
		sum = pl.cum[n-1]
	}
	pl.members = append(pl.members, m)
	pl.cum = append(pl.cum, sum+m.weight) // at most MaxWeight per member: no overflow below 2^32 members
}

// draw returns a member of a non-empty pool, each with a chance in
// proportion to its weight.
func (pl *pool) draw(rnd *rand.Rand) *member {
	r := rnd.Int64N(pl.cum[len(pl.cum)-1])
	return pl.members[sort.Search(len(pl.cum), func(i int) bool { return pl.cum[i] > r })]
}
