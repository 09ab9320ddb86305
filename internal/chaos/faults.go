package chaos

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Kind is a kind of fault.
type Kind string

// The fault kinds. kill-* is SIGKILL, then a start after the hold;
// stop-* is SIGSTOP, then SIGCONT after the hold; restart-* is SIGTERM
// and a start at once. meta-leader kills the Raft leader, meta-quorum
// the leader and one more (no quorum) for the hold. cut-* are network
// partitions (netns only) for the hold: a session from one data node,
// a data node from every meta node, a session from every other node
// (its clients still reach it).
const (
	KillData       Kind = "kill-data"
	StopData       Kind = "stop-data"
	RestartData    Kind = "restart-data"
	KillSession    Kind = "kill-session"
	StopSession    Kind = "stop-session"
	RestartSession Kind = "restart-session"
	KillMeta       Kind = "kill-meta"
	StopMeta       Kind = "stop-meta"
	RestartMeta    Kind = "restart-meta"
	MetaLeader     Kind = "meta-leader"
	MetaQuorum     Kind = "meta-quorum"
	CutSessionData Kind = "cut-session-data"
	CutDataMeta    Kind = "cut-data-meta"
	CutSessionAll  Kind = "cut-session-all"
)

// AllKinds is every fault kind, in a fixed order.
var AllKinds = []Kind{KillData, StopData, RestartData, KillSession, StopSession, RestartSession,
	KillMeta, StopMeta, RestartMeta, MetaLeader, MetaQuorum, CutSessionData, CutDataMeta, CutSessionAll}

// Partition reports whether k cuts links (needs a Net that can).
func (k Kind) Partition() bool { return strings.HasPrefix(string(k), "cut-") }

// ParseKinds parses a comma-separated list of kinds; "" or "all" is
// AllKinds. Groups are accepted too: "data", "session", "meta" (a
// role's process faults),
// "process" (every kind but the cuts), "partition" (the cuts).
func ParseKinds(s string) ([]Kind, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return slices.Clone(AllKinds), nil
	}
	var out []Kind
	add := func(k Kind) {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		switch f {
		case "process":
			for _, k := range AllKinds {
				if !k.Partition() {
					add(k)
				}
			}
			continue
		case "partition":
			for _, k := range AllKinds {
				if k.Partition() {
					add(k)
				}
			}
			continue
		case RoleData, RoleSession, RoleMeta:
			for _, k := range AllKinds {
				if !k.Partition() && (strings.HasSuffix(string(k), "-"+f) || (f == RoleMeta && strings.HasPrefix(string(k), "meta-"))) {
					add(k)
				}
			}
			continue
		}
		if !slices.Contains(AllKinds, Kind(f)) {
			return nil, fmt.Errorf("chaos: unknown fault kind %q (kinds: %s; groups: process, partition, data, session, meta)", f, joinKinds(AllKinds))
		}
		add(Kind(f))
	}
	if len(out) == 0 {
		return nil, errors.New("chaos: no fault kind")
	}
	return out, nil
}

func joinKinds(ks []Kind) string {
	var s []string
	for _, k := range ks {
		s = append(s, string(k))
	}
	return strings.Join(s, ",")
}

// Planned is one fault of a schedule: what, which node (Pick chooses
// among the candidates when the fault starts: a kind's targets depend
// only on the cluster's shape, except the meta leader), for how long,
// and the pause after the cluster has recovered.
type Planned struct {
	Kind Kind
	Pick uint32
	Hold time.Duration
	Gap  time.Duration
}

// Timing bounds a schedule's random durations.
type Timing struct {
	HoldMin, HoldMax time.Duration
	GapMin, GapMax   time.Duration
}

// DefaultTiming holds a fault 2-5 s and pauses 0.5-2 s after recovery.
var DefaultTiming = Timing{HoldMin: 2 * time.Second, HoldMax: 5 * time.Second, GapMin: 500 * time.Millisecond, GapMax: 2 * time.Second}

// Schedule returns the seed's schedule: n faults of kinds (at random, or
// in the order given, cycling, when ordered). The same seed, kinds and
// timing give the same schedule.
func Schedule(seed uint64, kinds []Kind, n int, ordered bool, t Timing) []Planned {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	between := func(lo, hi time.Duration) time.Duration {
		if hi <= lo {
			return lo
		}
		return lo + time.Duration(r.Int64N(int64(hi-lo)))
	}
	out := make([]Planned, 0, n)
	for i := range n {
		k := kinds[i%len(kinds)]
		if !ordered {
			k = kinds[r.IntN(len(kinds))]
		}
		p := Planned{Kind: k, Pick: r.Uint32(), Hold: between(t.HoldMin, t.HoldMax), Gap: between(t.GapMin, t.GapMax)}
		out = append(out, p)
	}
	return out
}

// injected is a fault: the nodes it touches, how to start it (act) and
// how to end it (heal).
type injected struct {
	target string
	datas  []*Node // data nodes whose keys are on the fault
	sess   []*Node // sessions whose clients are on the fault
	none   bool    // meta: nothing on the data path
	act    func() error
	heal   func() error
}

// plan chooses fault p's target on c, without touching anything yet: the
// runner records the fault as started, then acts, so what the action
// itself holds up (a graceful stop takes seconds) is charged to this
// fault. leads reports whether a data node leads some loaded key: a data
// fault picks among those (all, if none), so it has keys on it to measure.
func plan(c *Cluster, p Planned, leads func(*Node) bool) (*injected, error) {
	pick := func(nodes []*Node) *Node { return nodes[int(p.Pick)%len(nodes)] }
	pickData := func() *Node {
		if busy := slices.DeleteFunc(slices.Clone(c.Datas), func(n *Node) bool { return !leads(n) }); len(busy) > 0 {
			return pick(busy)
		}
		return pick(c.Datas)
	}
	restart := func(nodes ...*Node) func() error {
		return func() error {
			var errs []error
			for _, n := range nodes {
				if err := n.Start(); err != nil {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		}
	}
	// process is a SIGKILL, SIGSTOP or SIGTERM-and-start of n.
	process := func(n *Node, kind string) *injected {
		f := &injected{target: n.ID}
		switch kind {
		case "kill":
			f.act, f.heal = n.Kill, restart(n)
		case "stop":
			f.act, f.heal = n.Freeze, n.Thaw
		default:
			f.act = func() error {
				n.Term(10 * time.Second)
				return n.Start()
			}
			f.heal = func() error { return nil }
		}
		return f
	}
	verb := func(k Kind) string { v, _, _ := strings.Cut(string(k), "-"); return v }
	var f *injected
	switch p.Kind {
	case KillData, StopData, RestartData:
		n := pickData()
		f = process(n, verb(p.Kind))
		f.datas = []*Node{n}
	case KillSession, StopSession, RestartSession:
		n := pick(c.Sessions)
		f = process(n, verb(p.Kind))
		f.sess = []*Node{n}
	case KillMeta, StopMeta, RestartMeta, MetaLeader, MetaQuorum:
		n := pick(c.Metas)
		if p.Kind == MetaLeader || p.Kind == MetaQuorum {
			if n = c.MetaLeader(); n == nil {
				return nil, errors.New("chaos: no meta leader to kill")
			}
		}
		switch p.Kind {
		case MetaLeader:
			f = process(n, "kill")
		case MetaQuorum:
			others := slices.DeleteFunc(slices.Clone(c.Metas), func(m *Node) bool { return m == n })
			second := others[int(p.Pick/7)%len(others)]
			f = &injected{target: n.ID + "+" + second.ID, heal: restart(n, second), act: func() error {
				if err := n.Kill(); err != nil {
					return err
				}
				return second.Kill()
			}}
		default:
			f = process(n, verb(p.Kind))
		}
		f.none = true
	case CutSessionData:
		s, d := pick(c.Sessions), c.Datas[int(p.Pick/7)%len(c.Datas)]
		f = &injected{target: s.ID + "|" + d.ID, datas: []*Node{d}, sess: []*Node{s}, heal: c.cfg.Net.Heal,
			act: func() error { return c.cfg.Net.Cut(s.ID, d.ID) }}
	case CutDataMeta:
		d := pickData()
		f = &injected{target: d.ID + "|meta", datas: []*Node{d}, heal: c.cfg.Net.Heal, act: func() error {
			for _, m := range c.Metas {
				if err := c.cfg.Net.Cut(d.ID, m.ID); err != nil {
					return err
				}
			}
			return nil
		}}
	case CutSessionAll:
		s := pick(c.Sessions)
		f = &injected{target: s.ID + "|all", sess: []*Node{s}, heal: c.cfg.Net.Heal, act: func() error {
			for _, n := range c.all {
				if n != s {
					if err := c.cfg.Net.Cut(s.ID, n.ID); err != nil {
						return err
					}
				}
			}
			return nil
		}}
	default:
		return nil, fmt.Errorf("chaos: unknown fault %q", p.Kind)
	}
	return f, nil
}

// start acts out f; on failure it heals what the action did.
func (f *injected) start() error {
	if err := f.act(); err != nil {
		_ = f.heal()
		return err
	}
	return nil
}
