package cluster

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestNew_Timing_OverridesTheProfile_RefusesWhatCannotWork: a zero field
// keeps the profile's timing, a set one replaces it; negative timings and
// a probe timeout that does not fit in the probe interval are refused.
func TestNew_Timing_OverridesTheProfile_RefusesWhatCannotWork(t *testing.T) {
	base := Config{NodeID: "x", BindAddr: "127.0.0.1", Meta: Meta{Role: RoleData}}
	for _, tc := range []struct {
		name    string
		profile string
		timing  Timing
		err     string
	}{
		{"negative interval", "lan", Timing{ProbeInterval: -time.Second}, "must not be negative"},
		{"negative multiplier", "lan", Timing{SuspicionMult: -1}, "must not be negative"},
		{"timeout past the profile's interval", "lan", Timing{ProbeTimeout: 2 * time.Second}, "probe timeout 2s must be shorter than the probe interval 1s"},
		{"timeout past its own interval", "local", Timing{ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 100 * time.Millisecond}, "must be shorter"},
	} {
		cfg := base
		cfg.Profile, cfg.Timing = tc.profile, tc.timing
		a, err := New(cfg, nil, nil)
		if err == nil {
			a.Kill()
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want ErrBadConfig with %q", tc.name, err, tc.err)
		}
	}

	// The LAN profile: 1s probes, suspicion x4, at most x6 unconfirmed.
	lan := base
	lan.Profile = "lan"
	a, err := New(lan, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Kill()
	if got, want := a.DetectionBudget(9), (Budget{Suspect: 2 * time.Second, DeadFast: 6 * time.Second, DeadSlow: 26 * time.Second}); got != want {
		t.Errorf("LAN budget for 9 members = %+v, want %+v", got, want)
	}
	slow := lan
	slow.Timing = Timing{ProbeInterval: 2 * time.Second, SuspicionMult: 3}
	b, err := New(slow, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Kill()
	if got, want := b.DetectionBudget(9), (Budget{Suspect: 4 * time.Second, DeadFast: 10 * time.Second, DeadSlow: 40 * time.Second}); got != want {
		t.Errorf("overridden budget for 9 members = %+v, want %+v", got, want)
	}
	// log10 scales the suspicion timeout past ten members.
	if got := b.DetectionBudget(100).DeadFast; got != 16*time.Second {
		t.Errorf("overridden budget for 100 members: dead after %v, want 16s", got)
	}
}

// TestAgent_Timing_InForce_AKilledMemberIsDeclaredDead: the overridden
// timings are the ones memberlist runs with: a pool on them notices a
// member that stopped (the wait is a deadline, not a measurement).
func TestAgent_Timing_InForce_AKilledMemberIsDeclaredDead(t *testing.T) {
	cfg := func(id string, join ...string) Config {
		return Config{NodeID: id, BindAddr: "127.0.0.1", Profile: "local", Join: join, RetryJoin: 20 * time.Millisecond,
			Meta: Meta{Role: RoleData, GRPC: "127.0.0.1:1", Zone: "z"}, Timing: Timing{ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 50 * time.Millisecond, SuspicionMult: 1}}
	}
	a := run(t, cfg("a"))
	b := run(t, cfg("b", a.Addr()))
	waitState(t, a, "b", StateAlive)
	if a.budget.probeInterval != 100*time.Millisecond || a.budget.suspicionMult != 1 {
		t.Fatalf("timings in force %+v, want the override", a.budget)
	}
	b.Kill()
	waitState(t, a, "b", StateDead)
}
