package cluster

import (
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/memberlist"
)

// Timing overrides the failure-detection timings of a profile; a zero
// field keeps the profile's. memberlist probes one member per
// ProbeInterval, waits ProbeTimeout for its ack (then asks others to
// probe it for the rest of the interval), and declares a suspect dead
// after a suspicion timeout of SuspicionMult x ProbeInterval (scaled by
// log10 of the pool size), up to six times that when no other member
// confirms the suspicion.
type Timing struct {
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	SuspicionMult int
}

// validate checks t on its own (apply checks it against the profile).
func (t Timing) validate() error {
	if t.ProbeInterval < 0 || t.ProbeTimeout < 0 || t.SuspicionMult < 0 {
		return fmt.Errorf("%w: gossip timings must not be negative (probe interval %v, probe timeout %v, suspicion multiplier %d)",
			ErrBadConfig, t.ProbeInterval, t.ProbeTimeout, t.SuspicionMult)
	}
	return nil
}

// apply sets t's non-zero fields on mc and checks the result: a probe
// must time out within its interval, which leaves the rest for the
// indirect probes.
func (t Timing) apply(mc *memberlist.Config) error {
	if err := t.validate(); err != nil {
		return err
	}
	if t.ProbeInterval > 0 {
		mc.ProbeInterval = t.ProbeInterval
	}
	if t.ProbeTimeout > 0 {
		mc.ProbeTimeout = t.ProbeTimeout
	}
	if t.SuspicionMult > 0 {
		mc.SuspicionMult = t.SuspicionMult
	}
	if mc.ProbeTimeout >= mc.ProbeInterval {
		return fmt.Errorf("%w: gossip probe timeout %v must be shorter than the probe interval %v", ErrBadConfig, mc.ProbeTimeout, mc.ProbeInterval)
	}
	return nil
}

// Budget is how long the pool takes to notice a member that stopped
// answering, from the timings in force (see Timing): within Suspect it is
// suspected (a probe interval until some member probes it, one more for
// the direct and indirect probes), and declared dead a suspicion timeout
// after that: DeadFast when enough members confirm the suspicion, DeadSlow
// when none does (one observer, or a partition). A frozen process is
// noticed the same way as a killed one; a killed one whose host answers
// "connection refused" is no faster.
type Budget struct {
	Suspect            time.Duration
	DeadFast, DeadSlow time.Duration
}

// timings are the figures a Budget is computed from.
type timings struct {
	probeInterval             time.Duration
	suspicionMult, maxTimeout int
}

func budgetOf(mc *memberlist.Config) timings {
	return timings{probeInterval: mc.ProbeInterval, suspicionMult: mc.SuspicionMult, maxTimeout: mc.SuspicionMaxTimeoutMult}
}

// at returns the budget in a pool of n members, by memberlist's formula
// for the suspicion timeout.
func (t timings) at(n int) Budget {
	scale := math.Max(1, math.Log10(math.Max(1, float64(n))))
	fast := time.Duration(float64(t.suspicionMult) * scale * float64(t.probeInterval))
	return Budget{
		Suspect:  2 * t.probeInterval,
		DeadFast: 2*t.probeInterval + fast,
		DeadSlow: 2*t.probeInterval + time.Duration(t.maxTimeout)*fast,
	}
}

// DetectionBudget returns how long this agent's pool takes to notice a
// member that stopped answering, in a pool of n members.
func (a *Agent) DetectionBudget(n int) Budget { return a.budget.at(n) }
