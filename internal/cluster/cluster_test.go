package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"
)

func start(t *testing.T, id string, join ...string) *Agent {
	t.Helper()
	return run(t, Config{NodeID: id, BindAddr: "127.0.0.1", Profile: "local", Join: join, RetryJoin: 20 * time.Millisecond,
		Meta: Meta{Role: RoleData, GRPC: "127.0.0.1:1", Zone: "z"}})
}

// run starts an agent with cfg, joining in the background until cleanup,
// which stops it.
func run(t *testing.T, cfg Config) *Agent {
	t.Helper()
	return runLogged(t, cfg, nil)
}

// runLogged is run with a logger (nil: none).
func runLogged(t *testing.T, cfg Config, logger *slog.Logger) *Agent {
	t.Helper()
	a, err := New(cfg, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.JoinLoop(ctx) }()
	t.Cleanup(func() { cancel(); <-done; a.Kill() })
	return a
}

func waitState(t *testing.T, a *Agent, id string, want State) Member {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, m := range a.Members() {
			if m.ID == id && m.State == want {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never saw %s %s; members: %+v", a.cfg.NodeID, id, want, a.Members())
		}
		select {
		case <-a.Changed():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestAgent_LeaveIsNotDeath(t *testing.T) {
	a := start(t, "a")
	b := start(t, "b", a.Addr())
	c := start(t, "c", a.Addr())
	m := waitState(t, a, "b", StateAlive)
	if m.Meta.Role != RoleData || m.Meta.Zone != "z" || m.Meta.GRPC != "127.0.0.1:1" {
		t.Fatalf("meta did not travel: %+v", m.Meta)
	}
	waitState(t, a, "c", StateAlive)
	b.Leave()
	waitState(t, a, "b", StateLeft)
	c.Kill()
	waitState(t, a, "c", StateDead)
}

// The leave intent and the leave travel apart: a peer that learns of the
// leave first sees a death, which the intent, when it comes, turns into a
// leave. An intent of another run of the node excuses nothing, and does
// not displace the intent of this run.
func TestAgent_LeaveIntentAfterDeath_TurnsLeft(t *testing.T) {
	a := start(t, "a")
	b := start(t, "b", a.Addr())
	c := start(t, "c", a.Addr())
	bm := waitState(t, a, "b", StateAlive)
	cm := waitState(t, a, "c", StateAlive)
	b.Kill()
	c.Kill()
	waitState(t, a, "b", StateDead)
	waitState(t, a, "c", StateDead)

	now := time.Now().UnixNano()
	gossip := func(li leaveIntent) {
		msg, err := json.Marshal(li)
		if err != nil {
			t.Fatal(err)
		}
		delegate{a}.NotifyMsg(append([]byte{intentMsg}, msg...))
	}
	gossip(leaveIntent{Node: "c", Boot: "0123456789abcdef", At: now}) // c's previous run
	gossip(leaveIntent{Node: "b", Boot: bm.Meta.Boot, At: now})
	gossip(leaveIntent{Node: "b", Boot: "fedcba9876543210", At: now}) // b's previous run
	waitState(t, a, "b", StateLeft)
	if m, ok := a.Member("c"); !ok || m.State != StateDead {
		t.Fatalf("c (boot %s) is %+v (known %v) after an intent of another run", cm.Meta.Boot, m, ok)
	}
	if m, ok := a.Member("b"); !ok || m.State != StateLeft {
		t.Fatalf("Member(b) = %+v, %v; want b, left", m, ok)
	}
	if _, ok := a.Member("nobody"); ok {
		t.Fatal("Member of an unknown id found one")
	}
	// Malformed, expired or self-naming gossip changes nothing.
	delegate{a}.NotifyMsg([]byte{intentMsg, '{'})
	delegate{a}.NotifyMsg(nil)
	delegate{a}.MergeRemoteState([]byte("[{"), false)
	gossip(leaveIntent{Node: "", Boot: "x", At: now})
	gossip(leaveIntent{Node: "d", Boot: "x", At: now - int64(2*forgetAfter)})
	gossip(leaveIntent{Node: "a", Boot: "x", At: now})
	var held []leaveIntent
	if err := json.Unmarshal(delegate{a}.LocalState(false), &held); err != nil || len(held) != 3 {
		t.Fatalf("a holds intents %v (%v), want b's two and c's old one", held, err)
	}
	// A peer that missed the gossip gets the intents by push/pull.
	d := start(t, "d")
	delegate{d}.MergeRemoteState(delegate{a}.LocalState(false), false)
	if err := json.Unmarshal(delegate{d}.LocalState(false), &held); err != nil || len(held) != 3 {
		t.Fatalf("d holds intents %v (%v) after a push/pull, want 3", held, err)
	}
}

func TestNew_RejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{NodeID: "", Meta: Meta{Role: RoleData}},
		{NodeID: "x", Meta: Meta{Role: "chef"}},
		{NodeID: "x", Meta: Meta{Role: RoleData, Zone: fmt.Sprintf("%0600d", 0)}},
		{NodeID: "x", Meta: Meta{Role: RoleData}, Profile: "wan?"},
	} {
		if _, err := New(cfg, nil, nil); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

func TestAgent_StopTwice_NoPanic(t *testing.T) {
	a := start(t, "solo")
	a.Kill()
	a.Leave() // memberlist panics on leave after shutdown; the agent must not
	a.Kill()
}

func TestAgent_ReconnectsToDeadMemberThatComesBack(t *testing.T) {
	a := start(t, "a")
	b := start(t, "b", a.Addr())
	waitState(t, a, "b", StateAlive)
	// b's seeds point at a; a keeps b in its reconnect rotation once dead.
	targets := a.reconnectTargets(nil, 0)
	if len(targets) != 0 {
		t.Fatalf("nothing is dead yet, but reconnect targets are %v", targets)
	}
	b.Kill()
	waitState(t, a, "b", StateDead)
	if got := a.reconnectTargets([]string{"seed:1"}, 0); len(got) != 2 || got[1] != "seed:1" {
		t.Fatalf("alone with a dead member: targets %v, want the dead member and the seeds", got)
	}
}
