package meta_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/meta"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/internal/testcluster"
)

// readyz is a meta node's /readyz answer.
type readyz struct {
	code     int
	Status   string `json:"status"`
	IsLeader bool   `json:"is_leader"`
	Slots    *struct {
		State               string `json:"state"`
		TableEpoch          uint64 `json:"table_epoch"`
		PendingMoves        int    `json:"pending_moves"`
		FollowersSyncing    int    `json:"followers_syncing"`
		Handovers           *int   `json:"handovers"`
		HandoversUnreported *int   `json:"handovers_unreported"`
		Error               string `json:"error"`
	} `json:"slots"`
}

func (r readyz) String() string {
	if r.Slots == nil {
		return fmt.Sprintf("%d %s (no slots detail)", r.code, r.Status)
	}
	h, u := "null", "null"
	if r.Slots.Handovers != nil {
		h = fmt.Sprint(*r.Slots.Handovers)
	}
	if r.Slots.HandoversUnreported != nil {
		u = fmt.Sprint(*r.Slots.HandoversUnreported)
	}
	return fmt.Sprintf("%d %s leader=%v slots %s (epoch %d: %d pending, %d syncing, %s handovers, %s unreported) %s",
		r.code, r.Status, r.IsLeader, r.Slots.State, r.Slots.TableEpoch, r.Slots.PendingMoves, r.Slots.FollowersSyncing, h, u, r.Slots.Error)
}

// getReadyz GETs n's /readyz (no credentials: it is open).
func getReadyz(t *testing.T, c *testcluster.Cluster, n *testcluster.MetaNode) readyz {
	t.Helper()
	code, body := get(t, c, c.URL(n.Server().HTTPAddr(), "/readyz"), "")
	r := readyz{code: code}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("%s /readyz: %v: %s", n.ID, err, body)
	}
	return r
}

// leaderReadyz returns the Raft leader's /readyz; it fails (for
// Eventually to retry) if the node asked no longer says it leads.
func leaderReadyz(t *testing.T, c *testcluster.Cluster) (readyz, error) {
	t.Helper()
	r := getReadyz(t, c, c.WaitLeader(t))
	if !r.IsLeader || r.Slots == nil || r.Slots.Handovers == nil {
		return r, fmt.Errorf("not an answer of the ready leader: %s", r)
	}
	return r, nil
}

// leads returns the slots id leads in the meta leader's table.
func leads(t *testing.T, c *testcluster.Cluster, id string) []slot.ID {
	var out []slot.ID
	for _, s := range c.WaitLeader(t).Server().State().Table.Slots {
		if s.Leader == slot.NodeID(id) {
			out = append(out, s.ID)
		}
	}
	return out
}

// waitSettledReadyz waits until the leader's /readyz says settled with
// every count 0, and checks that followers agree and report no handovers.
func waitSettledReadyz(t *testing.T, c *testcluster.Cluster) {
	t.Helper()
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		r, err := leaderReadyz(t, c)
		if err != nil {
			return err
		}
		if r.code != http.StatusOK || r.Slots.State != "settled" || r.Slots.PendingMoves != 0 || r.Slots.FollowersSyncing != 0 ||
			*r.Slots.Handovers != 0 || r.Slots.HandoversUnreported == nil || *r.Slots.HandoversUnreported != 0 {
			return fmt.Errorf("leader: %s", r)
		}
		for _, n := range c.LiveMetas() {
			if n.Server().IsLeader() {
				continue
			}
			f := getReadyz(t, c, n)
			if f.code != http.StatusOK || f.Slots == nil || f.Slots.State != "settled" || f.Slots.Handovers != nil {
				return fmt.Errorf("follower %s: %s (want settled, handovers null)", n.ID, f)
			}
		}
		return nil
	})
}

// The fault runs found /readyz and an all-synced table looking healthy
// while leaders were still moving back to a restarted data node. Here the
// only session answers no anti-entropy while slots move, so every
// handover stays in flight (deterministically, not by timing) until it
// answers again: /readyz must say moving all that time, stay 200, count
// the handovers data nodes report, and say settled once they finish.
func TestMeta_Readyz_MovingWhileARestartedDataNodeGetsItsSlotsBack_SettledAfter(t *testing.T) {
	// 16 slots, one move per round: the slots come back over many tables.
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, MetaConfig: func(_ int, cfg *meta.Config) {
		cfg.Slots = 16
		cfg.MaxMoves = 1
	}})
	sess := c.StartSession(t, "session-0")
	c.WaitDataSettled(t)
	waitSettledReadyz(t, c)

	// Failover: data-2 leaves, data-0 and data-1 take its slots over; with
	// the session silent their handovers cannot finish.
	sess.Mute(true)
	c.StopData(t, 2, false)
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		r, err := leaderReadyz(t, c)
		if err != nil {
			return err
		}
		if r.code != http.StatusOK || r.Status != "ready" {
			return fmt.Errorf("meta must stay ready while slots move: %s", r)
		}
		// Reported by the data nodes, not merely not reported yet.
		if r.Slots.State != "moving" || *r.Slots.Handovers-*r.Slots.HandoversUnreported < 1 {
			return fmt.Errorf("want moving with handovers reported: %s; %s", r, handoverPremise(c))
		}
		return nil
	})
	sess.Mute(false)
	c.WaitDataSettled(t)
	waitSettledReadyz(t, c)

	// data-2 comes back empty and gets its slots back, follower first.
	// While the session is silent no handover to it can finish, so from
	// the restart on the slots cannot settle: every sample must say
	// moving, until data-2 leads slots whose handovers are in flight.
	sess.Mute(true)
	c.RestartData(t, 2)
	samples := 0
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		r, err := leaderReadyz(t, c)
		if err != nil {
			return err
		}
		samples++
		if r.code != http.StatusOK || r.Slots.State != "moving" {
			t.Fatalf("sample %d after the restart, before any handover to data-2 could finish: %s; want 200 and moving", samples, r)
		}
		led := leads(t, c, "data-2")
		if len(led) == 0 || *r.Slots.Handovers-*r.Slots.HandoversUnreported < 1 {
			return fmt.Errorf("data-2 leads %v; %s", led, r)
		}
		// data-2's own readiness names those slots as migrating.
		ok, why := c.Data(2).Server().ReadyState()
		detail, _ := why.(map[string]any)
		migrating, _ := detail["slots"].([]uint32)
		if ok || !slices.ContainsFunc(led, func(s slot.ID) bool { return slices.Contains(migrating, uint32(s)) }) {
			return fmt.Errorf("data-2 leads %v but its /readyz says %v", led, why)
		}
		return nil
	})
	t.Logf("%d samples of the leader's /readyz after the restart, every one moving", samples)
	// A follower meta node cannot know handovers (null), but a copy of
	// each moved slot stays syncing until its handover finishes, so it
	// says moving too.
	testcluster.Eventually(t, testcluster.DefaultWait, func() error { // a follower applies the leader's tables a moment later
		for _, n := range c.LiveMetas() {
			if n.Server().IsLeader() {
				continue
			}
			if f := getReadyz(t, c, n); f.code != http.StatusOK || f.Slots == nil || f.Slots.State != "moving" || f.Slots.Handovers != nil || f.Slots.FollowersSyncing == 0 {
				return fmt.Errorf("follower %s during handovers: %s; want moving with syncing copies and handovers null", n.ID, f)
			}
		}
		return nil
	})
	sess.Mute(false)
	c.WaitDataSettled(t)
	waitSettledReadyz(t, c)
	if led := leads(t, c, "data-2"); len(led) < 16/3 {
		t.Errorf("settled with data-2 leading %v; want its share back", led)
	}
}

// handoverPremise describes what the live data nodes see of the sessions
// and their own readiness: a handover can finish only after an
// anti-entropy round hears from every session each node sees alive, so a
// failure that finds no handover in flight says here whether a node saw
// the (muted) session gone or never led a moved slot.
func handoverPremise(c *testcluster.Cluster) string {
	var b strings.Builder
	for _, n := range c.LiveData() {
		srv := n.Server()
		if srv == nil {
			continue
		}
		var sessions []string
		for _, m := range srv.Agent().Members() {
			if m.Meta.Role == cluster.RoleSession {
				sessions = append(sessions, m.ID+"="+m.State.String())
			}
		}
		ok, why := srv.ReadyState()
		fmt.Fprintf(&b, "%s sees sessions %v, ready %v %v; ", n.ID, sessions, ok, why)
	}
	return b.String()
}
