package chaos

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-registry/strata/pkg/client"
)

// Property is one of the checked properties, numbered as in the package
// doc.
type Property int

// The properties.
const (
	FinalExact    Property = 1 // the final snapshot holds exactly each live publication's last acked value
	NeverBack     Property = 2 // versions never go back; no publisher's value goes back
	NeverVanish   Property = 3 // no live publication vanishes from a snapshot
	Converges     Property = 4 // convergence after a fault within the bound
	OneContent    Property = 5 // one version, one content everywhere
	propertyCount          = 5
	maxViolations          = 200 // kept with their messages; all are counted
)

func (p Property) String() string {
	switch p {
	case FinalExact:
		return "final-exact"
	case NeverBack:
		return "never-back"
	case NeverVanish:
		return "never-vanish"
	case Converges:
		return "converges"
	case OneContent:
		return "one-content"
	}
	return "property-" + strconv.Itoa(int(p))
}

// Violation is one breach of a property.
type Violation struct {
	Property Property  `json:"property"`
	Name     string    `json:"name"`
	At       time.Time `json:"at"`
	What     string    `json:"what"`
}

// Value encodes what a publication publishes at seq: "<name>:<seq>",
// so a value shows who published it and how new it is.
func Value(name string, seq uint64) []byte { return []byte(name + ":" + strconv.FormatUint(seq, 10)) }

// parseValue is Value's inverse.
func parseValue(b []byte) (name string, seq uint64, ok bool) {
	name, s, found := strings.Cut(string(b), ":")
	if !found {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(s, 10, 64)
	return name, seq, err == nil && seq > 0
}

// Publication is one publisher the checker follows: its register ID (as
// subscribers see it in Value.PublisherID), a name, and its key.
type Publication struct {
	RegisterID, Name, Key string
}

// CheckConfig is what the checker checks against.
type CheckConfig struct {
	// Publications are every publication of the run, all live from
	// their first ack to the end.
	Publications []Publication
	// Subscribers are the subscribers' names; each follows every key.
	Subscribers []string
	// Keys are the subscribed keys.
	Keys []string
	// ConvergenceBound is how long after a fault's heal every subscriber
	// may take to show everything acked before the heal (property 4).
	ConvergenceBound time.Duration
}

// Blast says which (update, subscriber) pairs a fault can delay: those
// of a key in Keys (nil: every key) whose publisher or subscriber is on
// a session in Sessions (nil: wherever). None: no pair (a meta fault,
// which the data path must not notice).
type Blast struct {
	Keys     map[string]bool
	Sessions map[string]bool
	None     bool
}

func (b *Blast) on(key, pubSession, subSession string) bool {
	if b == nil || b.None {
		return false
	}
	return (b.Keys == nil || b.Keys[key]) &&
		(b.Sessions == nil || b.Sessions[pubSession] || b.Sessions[subSession])
}

// FaultStart describes a fault as it begins: what it is and whose
// latencies count as "on the faulty node".
type FaultStart struct {
	Kind   Kind
	Target string
	At     time.Time
	Blast  Blast
	// PubSessions and SubSessions are the session each publication's
	// and subscriber's client was on at the start.
	PubSessions, SubSessions map[string]string
}

// FaultStats is what the checker measured for one fault.
type FaultStats struct {
	Index  int           `json:"index"`
	Kind   Kind          `json:"kind"`
	Target string        `json:"target"`
	Start  time.Time     `json:"start"`
	Held   time.Duration `json:"held"`
	// OnKeys is how many keys were on the faulty node (-1: all).
	OnKeys int `json:"on_keys"`
	// StallOn and StallOff are the longest update->subscriber latency
	// of an update sent between this fault's start and the next one's,
	// for pairs on and off the faulty node.
	StallOn  time.Duration `json:"stall_on"`
	StallOff time.Duration `json:"stall_off"`
	// PairsOn and PairsOff count those pairs.
	PairsOn  uint64 `json:"pairs_on"`
	PairsOff uint64 `json:"pairs_off"`
	// WorstOn and WorstOff are the pairs behind StallOn and StallOff,
	// to find in the nodes' logs.
	WorstOn  *Pair `json:"worst_on,omitempty"`
	WorstOff *Pair `json:"worst_off,omitempty"`
	// Convergence is how long after the heal every subscriber showed
	// everything acked before it; -1 while not yet.
	Convergence time.Duration `json:"convergence"`
	// Error is set when the fault could not be injected or healed.
	Error string `json:"error,omitempty"`
}

// Pair is one update reaching one subscriber: which, from and to which
// sessions (at the fault's start), when it was sent and how long it took.
type Pair struct {
	Key        string        `json:"key"`
	Publisher  string        `json:"publisher"`
	Seq        uint64        `json:"seq"`
	Subscriber string        `json:"subscriber"`
	PubSession string        `json:"pub_session"`
	SubSession string        `json:"sub_session"`
	Sent       time.Time     `json:"sent"`
	Latency    time.Duration `json:"latency"`
}

func (p *Pair) String() string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%s %s:%d (via %s) -> %s (via %s) sent %s took %v", p.Key, p.Publisher, p.Seq, p.PubSession,
		p.Subscriber, p.SubSession, p.Sent.Format("15:04:05.000"), p.Latency.Round(time.Millisecond))
}

// Checker checks a history online, as the clients report it: memory is
// per publication and subscriber, plus the updates not yet seen by every
// subscriber, plus one content hash per (key, version) seen. Safe for
// concurrent use.
type Checker struct {
	cfg CheckConfig

	mu     sync.Mutex
	pubs   map[string]*pubState // by register ID
	byName map[string]*pubState
	subs   map[string]*subState
	// contents is property 5: key -> version -> content hash and the
	// first subscriber that saw it.
	contents map[string]map[uint64]seenContent
	faults   []*faultState
	viol     []Violation
	counts   [propertyCount + 1]uint64
	ops      struct{ sent, acked, failed, snapshots uint64 }
	// Latency histograms: per update, the latest of the relevant
	// subscribers (update -> all subscribers).
	baseline, onFault, offFault, onRecovery, offRecovery Hist
	// pairs is every update->one subscriber latency.
	pairs Hist
}

type seenContent struct {
	hash uint64
	sub  string
}

type pubState struct {
	Publication
	sent      []int64 // unix ns, index seq-1
	sentFault []int32 // fault index at send (-1: before any), index seq-1
	// sentActive: sent while the fault was active (not yet healed).
	sentActive []bool
	lastSent   uint64
	lastAcked  uint64
	// reached[sub] is the newest seq the subscriber has shown.
	reached map[string]uint64
	// frontier is min over subscribers of reached: every seq up to it has
	// reached everyone.
	frontier uint64
	// pending per seq above frontier: the latest on and off latency so far.
	pending map[uint64]*pendingUpdate
}

type pendingUpdate struct {
	maxOn, maxOff time.Duration
	on, off       int
}

type subState struct {
	views map[string]*view // by key
}

type view struct {
	version uint64
	cur     map[string]uint64 // register ID -> seq followed (a vanished one kept)
	last    map[string]uint64 // register ID -> seq, exactly the latest snapshot
	ever    map[string]bool   // register IDs ever shown
	at      time.Time
}

type faultState struct {
	FaultStats
	start  FaultStart
	healed time.Time
	// target is each publication's last acked seq at the heal; done says
	// which have reached every subscriber.
	target map[string]uint64
	done   map[string]bool
}

// NewChecker returns a checker for cfg.
func NewChecker(cfg CheckConfig) *Checker {
	c := &Checker{cfg: cfg, pubs: map[string]*pubState{}, byName: map[string]*pubState{}, subs: map[string]*subState{},
		contents: map[string]map[uint64]seenContent{}}
	for _, p := range cfg.Publications {
		ps := &pubState{Publication: p, reached: map[string]uint64{}, pending: map[uint64]*pendingUpdate{}}
		c.pubs[p.RegisterID] = ps
		c.byName[p.Name] = ps
	}
	for _, s := range cfg.Subscribers {
		st := &subState{views: map[string]*view{}}
		for _, k := range cfg.Keys {
			st.views[k] = &view{cur: map[string]uint64{}, last: map[string]uint64{}, ever: map[string]bool{}}
		}
		c.subs[s] = st
	}
	return c
}

func (c *Checker) violate(p Property, at time.Time, format string, args ...any) {
	c.counts[p]++
	if len(c.viol) < maxViolations {
		c.viol = append(c.viol, Violation{Property: p, Name: p.String(), At: at, What: fmt.Sprintf(format, args...)})
	}
}

// current returns the index of the fault in progress at t, and whether
// it was active (not yet healed); -1 before the first.
func (c *Checker) current() (int, bool) {
	i := len(c.faults) - 1
	if i < 0 {
		return -1, false
	}
	return i, c.faults[i].healed.IsZero()
}

// Sent records that publication registerID is about to send seq (its
// Publish for 1, an Update after): the start of its latency. Seqs are
// sent in order, one at a time.
func (c *Checker) Sent(registerID string, seq uint64, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pubs[registerID]
	if p == nil || seq != p.lastSent+1 {
		return
	}
	c.ops.sent++
	f, active := c.current()
	p.sent = append(p.sent, at.UnixNano())
	p.sentFault = append(p.sentFault, int32(f))
	p.sentActive = append(p.sentActive, active)
	p.lastSent = seq
	p.pending[seq] = &pendingUpdate{}
	if len(c.subs) == 0 {
		c.finalize(p, seq, at)
	}
}

// Acked records the session's ack of seq (err nil) or a failed call.
func (c *Checker) Acked(registerID string, seq uint64, at time.Time, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pubs[registerID]
	if p == nil {
		return
	}
	if err != nil {
		c.ops.failed++
		return
	}
	c.ops.acked++
	if seq > p.lastAcked {
		p.lastAcked = seq
	}
}

// Observed records a snapshot subscriber sub's subscription of key
// returned at time at.
func (c *Checker) Observed(sub, key string, at time.Time, snap client.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ops.snapshots++
	s := c.subs[sub]
	if s == nil {
		return
	}
	v := s.views[key]
	if v == nil {
		return
	}
	// 2: versions go forward.
	if v.version != 0 && snap.Version <= v.version {
		c.violate(NeverBack, at, "%s %s: version %d after %d", sub, key, snap.Version, v.version)
	}
	// 5: one version, one content.
	h := contentHash(snap.Values)
	vs := c.contents[key]
	if vs == nil {
		vs = map[uint64]seenContent{}
		c.contents[key] = vs
	}
	if prev, ok := vs[snap.Version]; !ok {
		vs[snap.Version] = seenContent{hash: h, sub: sub}
	} else if prev.hash != h {
		c.violate(OneContent, at, "%s version %d: %s saw %s, %s saw another content", key, snap.Version, sub, describe(snap.Values), prev.sub)
	}
	cur := make(map[string]uint64, len(snap.Values))
	for _, val := range snap.Values {
		p := c.pubs[val.PublisherID]
		name, seq, ok := parseValue(val.Data)
		switch {
		case p == nil || !ok || name != p.Name:
			c.violate(FinalExact, at, "%s %s version %d: a value no publication of the run published: %s=%q", sub, key, snap.Version, val.PublisherID, val.Data)
			continue
		case p.Key != key:
			c.violate(OneContent, at, "%s %s version %d: %s belongs to %s", sub, key, snap.Version, p.Name, p.Key)
			continue
		case seq > p.lastSent:
			c.violate(FinalExact, at, "%s %s version %d: %s at %d, never sent (last sent %d)", sub, key, snap.Version, p.Name, seq, p.lastSent)
			continue
		}
		if _, dup := cur[p.RegisterID]; dup {
			c.violate(OneContent, at, "%s %s version %d: %s twice", sub, key, snap.Version, p.Name)
		}
		cur[p.RegisterID] = seq
		// 2: a publisher's value never goes back.
		if r := p.reached[sub]; seq < r {
			c.violate(NeverBack, at, "%s %s version %d: %s back to %d after %d", sub, key, snap.Version, p.Name, seq, r)
		} else if seq > r {
			c.advance(p, sub, r, seq, at)
		}
	}
	last := make(map[string]uint64, len(cur))
	for id, seq := range cur {
		last[id] = seq
	}
	// 3: nothing once shown vanishes.
	for id := range v.ever {
		if _, ok := cur[id]; !ok {
			c.violate(NeverVanish, at, "%s %s version %d: %s vanished (last shown at %d)", sub, key, snap.Version, c.pubs[id].Name, v.cur[id])
			cur[id] = v.cur[id] // keep following what it had
		}
	}
	for id := range cur {
		v.ever[id] = true
	}
	v.version, v.cur, v.last, v.at = snap.Version, cur, last, at
}

// advance records that sub shows p at seq, up from r, at t.
func (c *Checker) advance(p *pubState, sub string, r, seq uint64, t time.Time) {
	p.reached[sub] = seq
	for q := r + 1; q <= seq; q++ {
		pu := p.pending[q]
		if pu == nil {
			continue
		}
		lat := time.Duration(t.UnixNano() - p.sent[q-1])
		c.pairs.Add(lat)
		// An update still on its way when the next fault began is that
		// fault's to answer for (the runner starts a fault only after
		// the previous one converged): charge it there.
		if cur := int32(len(c.faults) - 1); cur > p.sentFault[q-1] {
			p.sentFault[q-1], p.sentActive[q-1] = cur, c.faults[cur].healed.IsZero()
		}
		if f := p.sentFault[q-1]; f >= 0 {
			fs := c.faults[f]
			ps, ss := fs.start.PubSessions[p.RegisterID], fs.start.SubSessions[sub]
			pair := func() *Pair {
				return &Pair{Key: p.Key, Publisher: p.Name, Seq: q, Subscriber: sub, PubSession: ps, SubSession: ss,
					Sent: time.Unix(0, p.sent[q-1]), Latency: lat}
			}
			n, most, pairs, stall, worst := &pu.off, &pu.maxOff, &fs.PairsOff, &fs.StallOff, &fs.WorstOff
			if fs.start.Blast.on(p.Key, ps, ss) {
				n, most, pairs, stall, worst = &pu.on, &pu.maxOn, &fs.PairsOn, &fs.StallOn, &fs.WorstOn
			}
			*n++
			*most = max(*most, lat)
			*pairs++
			if lat > *stall {
				*stall, *worst = lat, pair()
			}
		} else {
			pu.off++
			pu.maxOff = max(pu.maxOff, lat)
		}
	}
	// The frontier: every subscriber reached it.
	front := seq
	for _, s := range c.cfg.Subscribers {
		front = min(front, p.reached[s])
	}
	for q := p.frontier + 1; q <= front; q++ {
		c.finalize(p, q, t)
	}
	p.frontier = max(p.frontier, front)
	c.converge(p, t)
}

// finalize folds update q of p, now seen by every subscriber, into the
// histograms.
func (c *Checker) finalize(p *pubState, q uint64, t time.Time) {
	pu := p.pending[q]
	if pu == nil {
		return
	}
	delete(p.pending, q)
	f, active := p.sentFault[q-1], p.sentActive[q-1]
	on, off := &c.onRecovery, &c.offRecovery
	switch {
	case f < 0:
		on, off = &c.baseline, &c.baseline
	case active:
		on, off = &c.onFault, &c.offFault
	}
	if pu.on > 0 {
		on.Add(pu.maxOn)
	}
	if pu.off > 0 {
		off.Add(pu.maxOff)
	}
}

// converge marks p done in every healed fault whose target it reached.
func (c *Checker) converge(p *pubState, t time.Time) {
	for _, f := range c.faults {
		if f.healed.IsZero() || f.Convergence >= 0 || f.done[p.RegisterID] || p.frontier < f.target[p.RegisterID] {
			continue
		}
		f.done[p.RegisterID] = true
		if len(f.done) == len(f.target) {
			f.Convergence = max(t.Sub(f.healed), 0)
		}
	}
}

// FaultStarted records a fault's start and returns its index.
func (c *Checker) FaultStarted(s FaultStart) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := &faultState{start: s, FaultStats: FaultStats{Index: len(c.faults), Kind: s.Kind, Target: s.Target, Start: s.At, Convergence: -1, OnKeys: -1}}
	if s.Blast.None {
		f.OnKeys = 0
	} else if s.Blast.Keys != nil {
		f.OnKeys = len(s.Blast.Keys)
	}
	c.faults = append(c.faults, f)
	return f.Index
}

// FaultHealed records that fault i ended (the node restarted, thawed or
// the cut healed) at t, or failed with err.
func (c *Checker) FaultHealed(i int, t time.Time, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.faults[i]
	f.healed, f.Held = t, t.Sub(f.Start)
	if err != nil {
		f.Error = err.Error()
	}
	f.target, f.done = map[string]uint64{}, map[string]bool{}
	for id, p := range c.pubs {
		f.target[id] = p.lastAcked
		if p.frontier >= p.lastAcked {
			f.done[id] = true
		}
	}
	if len(f.done) == len(f.target) {
		f.Convergence = 0
	}
}

// Convergence returns how long fault i took to converge after its heal,
// and false while it has not.
func (c *Checker) Convergence(i int) (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.faults[i]
	return f.Convergence, f.Convergence >= 0
}

// Lagging returns, for the report of a fault that does not converge,
// which subscribers lack which publications' targets.
func (c *Checker) Lagging(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.faults[i]
	var out []string
	for id, want := range f.target {
		p := c.pubs[id]
		for _, s := range c.cfg.Subscribers {
			if r := p.reached[s]; r < want {
				out = append(out, fmt.Sprintf("%s shows %s at %d < %d", s, p.Name, r, want))
			}
		}
	}
	slices.Sort(out)
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("and %d more", len(out)-10))
	}
	return strings.Join(out, "; ")
}

// FinalExactNow reports whether every subscriber's latest snapshot of
// every key holds exactly each publication's last acked value (what
// Finish checks), with the first difference.
func (c *Checker) FinalExactNow() (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	diffs := c.finalDiffs()
	if len(diffs) == 0 {
		return true, ""
	}
	return false, diffs[0]
}

func (c *Checker) finalDiffs() []string {
	var diffs []string
	for _, sub := range c.cfg.Subscribers {
		for _, key := range c.cfg.Keys {
			v := c.subs[sub].views[key]
			want := map[string]uint64{}
			for _, p := range c.pubs {
				if p.Key == key && p.lastAcked > 0 {
					want[p.RegisterID] = p.lastAcked
				}
			}
			for id, seq := range want {
				if got, ok := v.last[id]; !ok {
					diffs = append(diffs, fmt.Sprintf("%s %s (version %d): %s missing, last acked %d", sub, key, v.version, c.pubs[id].Name, seq))
				} else if got != seq {
					diffs = append(diffs, fmt.Sprintf("%s %s (version %d): %s at %d, last acked %d", sub, key, v.version, c.pubs[id].Name, got, seq))
				}
			}
			for id := range v.last {
				if _, ok := want[id]; !ok {
					diffs = append(diffs, fmt.Sprintf("%s %s (version %d): %s shown, never acked", sub, key, v.version, c.pubs[id].Name))
				}
			}
		}
	}
	slices.Sort(diffs)
	return diffs
}

// Result is the checker's verdict and measurements.
type Result struct {
	Violations []Violation `json:"violations"`
	// Counts is violations per property (index 1..5; 0 unused).
	Counts      [propertyCount + 1]uint64 `json:"counts"`
	Total       uint64                    `json:"total_violations"`
	Sent        uint64                    `json:"updates_sent"`
	Acked       uint64                    `json:"updates_acked"`
	Failed      uint64                    `json:"updates_failed"`
	Snapshots   uint64                    `json:"snapshots_seen"`
	Faults      []FaultStats              `json:"faults"`
	WorstConv   time.Duration             `json:"worst_convergence"`
	Undelivered int                       `json:"undelivered_updates"`
	// Histograms (update -> all relevant subscribers).
	Baseline, OnFault, OffFault, OnRecovery, OffRecovery, Pairs Hist `json:"-"`
}

// OK reports no violation.
func (r *Result) OK() bool { return r.Total == 0 }

// Finish checks property 1 on the latest snapshots, charges updates not
// yet seen by every subscriber (latency up to at), checks every healed
// fault converged within the bound, and returns the result.
func (c *Checker) Finish(at time.Time) *Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.finalDiffs() {
		c.violate(FinalExact, at, "final snapshot: %s", d)
	}
	r := &Result{}
	for _, p := range c.pubs {
		for q := p.frontier + 1; q <= p.lastSent; q++ {
			if pu := p.pending[q]; pu != nil {
				r.Undelivered++
				lat := at.Sub(time.Unix(0, p.sent[q-1]))
				if f := p.sentFault[q-1]; f >= 0 {
					c.faults[f].StallOn = max(c.faults[f].StallOn, lat)
				}
			}
		}
	}
	for _, f := range c.faults {
		switch {
		case f.healed.IsZero():
			c.violate(Converges, at, "fault %d (%s %s) never healed", f.Index, f.Kind, f.Target)
		case f.Convergence < 0:
			c.violate(Converges, at, "fault %d (%s %s): not converged %v after its heal", f.Index, f.Kind, f.Target, at.Sub(f.healed).Round(time.Millisecond))
		case c.cfg.ConvergenceBound > 0 && f.Convergence > c.cfg.ConvergenceBound:
			c.violate(Converges, at, "fault %d (%s %s): converged %v after its heal, bound %v", f.Index, f.Kind, f.Target, f.Convergence.Round(time.Millisecond), c.cfg.ConvergenceBound)
		}
		if f.Convergence > r.WorstConv {
			r.WorstConv = f.Convergence
		}
		r.Faults = append(r.Faults, f.FaultStats)
	}
	r.Violations = slices.Clone(c.viol)
	r.Counts = c.counts
	for _, n := range c.counts {
		r.Total += n
	}
	r.Sent, r.Acked, r.Failed, r.Snapshots = c.ops.sent, c.ops.acked, c.ops.failed, c.ops.snapshots
	r.Baseline, r.OnFault, r.OffFault, r.OnRecovery, r.OffRecovery, r.Pairs = c.baseline, c.onFault, c.offFault, c.onRecovery, c.offRecovery, c.pairs
	return r
}

// Ops returns the counts so far: updates sent and acked, snapshots seen,
// violations.
func (c *Checker) Ops() (sent, acked, snapshots, violations uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var v uint64
	for _, n := range c.counts {
		v += n
	}
	return c.ops.sent, c.ops.acked, c.ops.snapshots, v
}

func contentHash(vals []client.Value) uint64 {
	parts := make([]string, 0, len(vals))
	for _, v := range vals {
		parts = append(parts, v.PublisherID+"\x00"+string(v.Data)+"\x00"+v.Zone)
	}
	slices.Sort(parts)
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{1})
	}
	return h.Sum64()
}

func describe(vals []client.Value) string {
	var parts []string
	for _, v := range vals {
		parts = append(parts, string(v.Data))
	}
	slices.Sort(parts)
	return "[" + strings.Join(parts, " ") + "]"
}
