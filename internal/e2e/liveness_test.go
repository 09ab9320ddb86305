//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/record"
)

// The client's liveness timings here: heartbeats every 500 ms (the
// sessions ask for 10 s; the client's own is shorter, so it wins), dead
// after the default three missed, so a frozen session is detected within
// 1.5 s and the client must be elsewhere within rehomeWithin.
const (
	livenessHeartbeat = 500 * time.Millisecond
	rehomeWithin      = 3 * time.Second
)

// TestProcesses_FrozenSession_ClientRehomesWithin3s_SubscriberKeepsThePublication
// runs 3 meta, 3 data and 2 session processes. A client publishes a record
// and subscribes to another key through one session; a subscriber on the
// other session follows the record. Then the client's session is frozen
// with SIGSTOP (its sockets stay open and silent, as a stuck process's
// do):
//
//  1. The client re-homes to the other session within 3 s, by its
//     heartbeat deadline (nothing else tells it: the frozen session's
//     connection neither breaks nor answers).
//  2. Its publication takes an update through the new session, its
//     subscription keeps receiving changes, and the data tier holds the
//     record as the new session's.
//  3. SIGCONT: the woken session finds the client gone and, after its
//     disconnect grace, drops its copy, which removes nothing (the new
//     session owns the record); a later update still arrives.
//
// Throughout, every snapshot the subscriber reports holds the record at
// its newest value or a later one: never an empty list, never an older
// value, versions only up.
func TestProcesses_FrozenSession_ClientRehomesWithin3s_SubscriberKeepsThePublication(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	const dataID, feedID = "com.example.e2e.Frozen", "com.example.e2e.FrozenFeed"
	key := record.DataInfoID(dataID, "", "")

	pubc := newClient(t, c, client.WithSessions(c.sessionAddrs()...), client.WithHeartbeat(livenessHeartbeat))
	if err := pubc.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	victim := c.byGRPC(pubc.Session())
	if victim == nil || victim.role != "session" {
		t.Fatalf("client connected to %q, not one of the sessions %v", pubc.Session(), c.sessionAddrs())
	}
	survivor := c.sessions[0]
	if survivor == victim {
		survivor = c.sessions[1]
	}
	subc := newClient(t, c, client.WithSessions(survivor.addrs.GRPC))
	feeder := newClient(t, c, client.WithSessions(survivor.addrs.GRPC))

	sub, err := subc.Subscribe(ctx, dataID)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pubc.Publish(ctx, dataID, []byte("10.0.0.1:8080"))
	if err != nil {
		t.Fatal(err)
	}
	values := map[string][]string{p.RegisterID(): {"10.0.0.1:8080", "10.0.0.1:8081", "10.0.0.1:8082"}}
	h := watch(t, sub, map[string]string{p.RegisterID(): "p"})
	t.Cleanup(func() { h.checkNeverLost(t, values) })
	h.waitFor(t, settleWait, holds(map[string]string{p.RegisterID(): "10.0.0.1:8080"}))

	own, err := pubc.Subscribe(ctx, feedID)
	if err != nil {
		t.Fatal(err)
	}
	feed := watch(t, own, nil)
	f, err := feeder.Publish(ctx, feedID, []byte("f1"))
	if err != nil {
		t.Fatal(err)
	}
	feed.waitFor(t, settleWait, holds(map[string]string{f.RegisterID(): "f1"}))

	// 1. Freeze the client's session. Registered before the signal (and
	// after startCluster's cleanup, so it runs first): a stopped process
	// would ignore the SIGTERM that stops the cluster.
	t.Cleanup(func() { _ = victim.cmd.Process.Signal(syscall.SIGCONT) })
	t.Logf("freezing %s, the client's session (the subscriber is on %s)", victim.id, survivor.id)
	frozen := time.Now()
	if err := victim.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, rehomeWithin, func() error {
		if s := pubc.Session(); s != survivor.addrs.GRPC {
			return fmt.Errorf("client on %q, want %s at %s", s, survivor.id, survivor.addrs.GRPC)
		}
		return nil
	})
	t.Logf("client re-homed to %s %v after SIGSTOP", survivor.id, time.Since(frozen).Round(time.Millisecond))

	// 2. Everything goes on through the survivor.
	if err := p.Update(ctx, []byte("10.0.0.1:8081")); err != nil {
		t.Fatal(err)
	}
	h.waitFor(t, settleWait, holds(map[string]string{p.RegisterID(): "10.0.0.1:8081"}))
	if err := f.Update(ctx, []byte("f2")); err != nil {
		t.Fatal(err)
	}
	feed.waitFor(t, settleWait, holds(map[string]string{f.RegisterID(): "f2"}))
	leader := c.dataNode(t, c.route(t, key).Leader)
	testcluster.Eventually(t, settleWait, func() error {
		return holdsDatum(leader, key, map[string]datumWant{p.RegisterID(): {clientVersion: 2, session: survivor.addrs.Proc}})
	})
	t.Logf("update and change through %s done %v after SIGSTOP", survivor.id, time.Since(frozen).Round(time.Millisecond))

	// 3. Wake the frozen session; once its grace has dropped its copy,
	// the record is still there and takes another update.
	if err := victim.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, deathWait, func() error {
		n, err := gauge(victim, "strata_session_publishers")
		if err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("%s still holds %v publishers", victim.id, n)
		}
		return nil
	})
	t.Logf("%s woke and dropped its copy %v after SIGSTOP", victim.id, time.Since(frozen).Round(time.Millisecond))
	if err := p.Update(ctx, []byte("10.0.0.1:8082")); err != nil {
		t.Fatal(err)
	}
	h.waitFor(t, settleWait, holds(map[string]string{p.RegisterID(): "10.0.0.1:8082"}))
	if s := pubc.Session(); s != survivor.addrs.GRPC {
		t.Errorf("after the wake the client is on %q, want it still on %s", s, survivor.id)
	}
}

// gauge reads an unlabelled metric from n's /metrics.
func gauge(n *node, name string) (float64, error) {
	resp, err := n.http.Get("https://" + n.addrs.HTTP + "/metrics")
	if err != nil {
		return 0, fmt.Errorf("%s /metrics: %w", n.id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s /metrics: %s", n.id, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("%s /metrics: %w", n.id, err)
	}
	return 0, fmt.Errorf("%s /metrics has no %s", n.id, name)
}
