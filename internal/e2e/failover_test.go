//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/publisher"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/record"
)

// TestProcesses_KillSessionThenDataLeader_SubscriberNeverLosesAPublication
// runs 3 meta, 3 data and 2 session processes. A publisher (connected to
// the sessions directly) publishes two records; a subscriber (which finds
// a session through meta) follows them. Then:
//
//  1. SIGKILL the publisher's session. The publisher fails over to the
//     other session, which becomes the records' owner on the data tier, so
//     the dead session's expiry removes nothing; an update arrives.
//  2. SIGKILL the data node leading the key's slot (once its follower
//     holds the records). Meta promotes the follower; an update made
//     meanwhile arrives.
//
// Throughout, every snapshot the subscriber reports holds both records,
// each at its newest value or a later one: never an empty or shrunken
// list, never an older value. Meta drops both dead nodes from its members.
func TestProcesses_KillSessionThenDataLeader_SubscriberNeverLosesAPublication(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	const dataID = "com.example.e2e.Echo"
	key := record.DataInfoID(dataID, "", "")

	pubc := newClient(t, c, client.WithSessions(c.sessionAddrs()...))
	subc := newClient(t, c, client.WithMeta(c.metaAddrs()...))
	sub, err := subc.Subscribe(ctx, dataID)
	if err != nil {
		t.Fatal(err)
	}
	p1, err := pubc.Publish(ctx, dataID, []byte("10.0.0.1:8080"))
	if err != nil {
		t.Fatal(err)
	}
	p2, err := pubc.Publish(ctx, dataID, []byte("10.0.0.2:8080"))
	if err != nil {
		t.Fatal(err)
	}
	// Every value each publication will have, in order.
	values := map[string][]string{
		p1.RegisterID(): {"10.0.0.1:8080", "10.0.0.1:8081"},
		p2.RegisterID(): {"10.0.0.2:8080", "10.0.0.2:8081"},
	}
	h := watch(t, sub, map[string]string{p1.RegisterID(): "p1", p2.RegisterID(): "p2"})
	t.Cleanup(func() { h.checkNeverLost(t, values) })
	h.waitFor(t, settleWait, holds(map[string]string{p1.RegisterID(): "10.0.0.1:8080", p2.RegisterID(): "10.0.0.2:8080"}))

	// 1. Kill the publisher's session.
	victim := c.byGRPC(pubc.Session())
	if victim == nil || victim.role != "session" {
		t.Fatalf("publisher connected to %q, not one of the sessions %v", pubc.Session(), c.sessionAddrs())
	}
	survivor := c.sessions[0]
	if survivor == victim {
		survivor = c.sessions[1]
	}
	subOn := "no session"
	if n := c.byGRPC(subc.Session()); n != nil {
		subOn = n.id
	}
	t.Logf("killing %s, the publisher's session (the subscriber is on %s)", victim.id, subOn)
	start := time.Now()
	victim.kill(t)
	testcluster.Eventually(t, settleWait, func() error {
		if s := pubc.Session(); s != survivor.addrs.GRPC {
			return fmt.Errorf("publisher on %q, want %s at %s", s, survivor.id, survivor.addrs.GRPC)
		}
		return nil
	})
	if err := p1.Update(ctx, []byte("10.0.0.1:8081")); err != nil {
		t.Fatal(err)
	}
	h.waitFor(t, settleWait, holds(map[string]string{p1.RegisterID(): "10.0.0.1:8081", p2.RegisterID(): "10.0.0.2:8080"}))
	t.Logf("update through %s arrived %v after the kill", survivor.id, time.Since(start).Round(time.Millisecond))

	// The replay made the surviving session the records' owner, so the
	// expiry of the dead session's publishers (gossip death plus
	// --session-grace) finds none. Meta drops the dead session no earlier
	// (--dead-grace is no shorter); h checks every snapshot meanwhile.
	leader := c.dataNode(t, c.route(t, key).Leader)
	owned := map[string]datumWant{
		p1.RegisterID(): {clientVersion: 2, session: survivor.addrs.Proc},
		p2.RegisterID(): {clientVersion: 1, session: survivor.addrs.Proc},
	}
	testcluster.Eventually(t, settleWait, func() error { return holdsDatum(leader, key, owned) })
	c.waitMemberGone(t, victim.id)
	t.Logf("meta dropped %s %v after the kill", victim.id, time.Since(start).Round(time.Millisecond))

	// 2. Kill the data node leading the key's slot, once every follower
	// holds what the leader has. (Replication is asynchronous; a write the
	// leader never passed on would have to come back from the session
	// through anti-entropy. Waiting makes the promoted copy whole either
	// way, so what this checks is the failover itself.)
	route := c.route(t, key)
	leader = c.dataNode(t, route.Leader)
	if len(route.Followers) == 0 {
		t.Fatalf("slot of %q: %+v; want a follower", key, route)
	}
	for _, id := range route.Followers {
		f := c.dataNode(t, id)
		testcluster.Eventually(t, settleWait, func() error { return holdsDatum(f, key, owned) })
	}
	t.Logf("killing %s, leader of slot %d (followers %v)", leader.id, route.ID, route.Followers)
	start = time.Now()
	leader.kill(t)
	if err := p2.Update(ctx, []byte("10.0.0.2:8081")); err != nil {
		t.Fatal(err)
	}
	h.waitFor(t, deathWait, holds(map[string]string{p1.RegisterID(): "10.0.0.1:8081", p2.RegisterID(): "10.0.0.2:8081"}))
	t.Logf("update arrived %v after the data kill", time.Since(start).Round(time.Millisecond))
	c.waitMemberGone(t, leader.id)
	// The follower took over; the arranger may since have moved the slot
	// on (leader balance), but never back to the dead node.
	if now := c.route(t, key); now.Leader == "" || now.Leader == leader.id || now.LeaderEpoch <= route.LeaderEpoch {
		t.Errorf("slot %d after the kill: %+v; want a live leader at an epoch above %d", route.ID, now, route.LeaderEpoch)
	}
}

// newClient returns a client with the test client's credentials
// (WithCredentials, as the README's client) and default options, plus
// opts; closed when the test ends.
func newClient(t *testing.T, c *cluster, opts ...client.Option) *client.Client {
	t.Helper()
	cl, err := client.New(context.Background(), append([]client.Option{client.WithCredentials(c.clientCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// holds returns a predicate true for a snapshot of exactly the given
// publications (register ID to its one value).
func holds(want map[string]string) func(client.Snapshot) bool {
	return func(s client.Snapshot) bool {
		if len(s.Values) != len(want) {
			return false
		}
		for _, v := range s.Values {
			if w, ok := want[v.PublisherID]; !ok || string(v.Data) != w {
				return false
			}
		}
		return true
	}
}

// history records every snapshot a subscription reports: a goroutine
// calls Next until the test ends, so no change merges away unseen while
// the test is busy elsewhere.
type history struct {
	names map[string]string // register ID to a short name, for messages

	mu    sync.Mutex
	snaps []client.Snapshot
	err   error // Next's error, once it returned one
	// changed is closed, and replaced, at every new snapshot or error.
	changed chan struct{}
}

// watch starts recording s; names label register IDs in failure messages.
func watch(t *testing.T, s *client.Subscription, names map[string]string) *history {
	h := &history{names: names, changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			snap, err := s.Next(ctx)
			h.mu.Lock()
			if err != nil {
				h.err = err
			} else {
				h.snaps = append(h.snaps, snap)
			}
			close(h.changed)
			h.changed = make(chan struct{})
			h.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return h
}

// waitFor waits until the latest snapshot satisfies want.
func (h *history) waitFor(t *testing.T, timeout time.Duration, want func(client.Snapshot) bool) client.Snapshot {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		h.mu.Lock()
		if n := len(h.snaps); n > 0 && want(h.snaps[n-1]) {
			s := h.snaps[n-1]
			h.mu.Unlock()
			return s
		}
		err, changed := h.err, h.changed
		h.mu.Unlock()
		if err != nil {
			t.Fatalf("subscription ended: %v; it reported:\n%s", err, h)
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("no awaited snapshot after %v; the subscription reported:\n%s", timeout, h)
		}
	}
}

// checkNeverLost fails the test if versions did not increase, or if, from
// the first snapshot holding every publication of values on, a snapshot
// lacks one, holds one twice, holds another, or shows one at a value
// older than one already shown. values maps each register ID to its
// values in the order they were published.
func (h *history) checkNeverLost(t *testing.T, values map[string][]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var bad []string
	full := false
	seen := map[string]int{} // register ID to the index of its newest value shown
	for i, s := range h.snaps {
		if i > 0 && s.Version <= h.snaps[i-1].Version {
			bad = append(bad, fmt.Sprintf("#%d: version %d after %d", i, s.Version, h.snaps[i-1].Version))
		}
		if !full {
			full = len(s.Values) == len(values)
			for _, v := range s.Values {
				full = full && slices.Contains(values[v.PublisherID], string(v.Data))
			}
			if !full {
				continue
			}
		}
		if len(s.Values) != len(values) {
			bad = append(bad, fmt.Sprintf("#%d: %d values, want %d", i, len(s.Values), len(values)))
		}
		shown := map[string]bool{}
		for _, v := range s.Values {
			idx := slices.Index(values[v.PublisherID], string(v.Data))
			switch {
			case idx < 0:
				bad = append(bad, fmt.Sprintf("#%d: unexpected value %s=%q", i, h.name(v.PublisherID), v.Data))
			case shown[v.PublisherID]:
				bad = append(bad, fmt.Sprintf("#%d: %s twice", i, h.name(v.PublisherID)))
			case idx < seen[v.PublisherID]:
				bad = append(bad, fmt.Sprintf("#%d: %s back to %q", i, h.name(v.PublisherID), v.Data))
			default:
				seen[v.PublisherID] = idx
			}
			shown[v.PublisherID] = true
		}
	}
	if !full && !t.Failed() {
		bad = append(bad, "no snapshot ever held every publication")
	}
	if len(bad) > 0 {
		t.Errorf("the subscriber lost or went back: %s; it reported:\n%s", strings.Join(bad, "; "), h.describe())
	}
}

func (h *history) name(registerID string) string {
	if n, ok := h.names[registerID]; ok {
		return n
	}
	return registerID
}

// String lists the snapshots; it takes h.mu.
func (h *history) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.describe()
}

// describe lists the snapshots; h.mu must be held.
func (h *history) describe() string {
	var b strings.Builder
	for i, s := range h.snaps {
		var vals []string
		for _, v := range s.Values {
			vals = append(vals, fmt.Sprintf("%s=%s", h.name(v.PublisherID), v.Data))
		}
		fmt.Fprintf(&b, "  #%d version %d cached=%v [%s]\n", i, s.Version, s.Cached, strings.Join(vals, " "))
	}
	if h.err != nil {
		fmt.Fprintf(&b, "  then Next: %v\n", h.err)
	}
	return b.String()
}

// datumView is a data node's /api/v1/datums?data_info_id=K.
type datumView struct {
	Version    uint64 `json:"version"`
	Publishers []struct {
		RegisterID    string   `json:"register_id"`
		ClientVersion uint64   `json:"client_version"`
		SessionID     string   `json:"session_id"`
		Values        [][]byte `json:"values"`
	} `json:"publishers"`
}

// datumWant is what a data node should hold for one publication.
type datumWant struct {
	clientVersion uint64
	session       string // owning session process
}

// holdsDatum checks that n's copy of key holds exactly want (register ID
// to client version and owner).
func holdsDatum(n *node, key string, want map[string]datumWant) error {
	var d datumView
	if err := getJSON(n, "/api/v1/datums?data_info_id="+url.QueryEscape(key), &d); err != nil {
		return err
	}
	got := map[string]datumWant{}
	for _, p := range d.Publishers {
		// Data nodes store register IDs qualified by their owner.
		got[publisher.ClientRegisterID(p.RegisterID, true)] = datumWant{clientVersion: p.ClientVersion, session: p.SessionID}
	}
	if len(got) != len(want) {
		return fmt.Errorf("%s holds %+v, want %+v", n.id, got, want)
	}
	for id, w := range want {
		if got[id] != w {
			return fmt.Errorf("%s holds %+v, want %+v", n.id, got, want)
		}
	}
	return nil
}
