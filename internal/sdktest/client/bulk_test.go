package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/sdktest"
	"github.com/strata-registry/strata/internal/session"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// leaderHas reads key from its slot leader once (no retry) and returns the
// values it holds.
func leaderHas(t *testing.T, c *testcluster.Cluster, dataID string) []string {
	t.Helper()
	key := record.DataInfoID(dataID, "", "")
	var out []string
	// A data node back from a restart takes its slots back over a few
	// table epochs: read from whichever node leads the slot once one does.
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		r := c.RouteOf(t, key)
		if r.Leader == nil {
			return fmt.Errorf("slot %d of %s has no live leader", r.Slot, key)
		}
		conn := c.DialAs(t, r.Leader.Server().GRPCAddr(), identity.RoleAdmin, testcluster.AdminName)
		defer conn.Close()
		resp, err := registryv1.NewDataServiceClient(conn).GetDatums(sdktest.Ctx(t), &registryv1.GetDatumsRequest{DataInfoIds: []string{key}})
		if err != nil {
			return fmt.Errorf("read %s from %s: %w", key, r.Leader.ID, err)
		}
		out = out[:0]
		for _, p := range resp.GetDatums()[0].GetPublishers() {
			for _, v := range p.GetValues() {
				out = append(out, string(v))
			}
		}
		return nil
	})
	return out
}

func TestClient_AckApplied_WaitsForTheDataTier_AckHeldDoesNot(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1})
	c.WaitDataSettled(t)
	ctx := sdktest.Ctx(t)
	cl := sdktest.New(t, c, client.WithSessions(sessionAddrs(c, 1)...))
	c.StopData(t, 0, true)
	// The session holds it: AckHeld returns with the data tier down.
	if _, err := cl.Publish(ctx, "com.example.held", []byte("v")); err != nil {
		t.Fatalf("AckHeld with the data tier down: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if _, err := cl.Publish(short, "com.example.applied", []byte("v"), client.WithAck(client.AckApplied)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AckApplied with the data tier down: %v, want it to wait until ctx ends", err)
	}
	// Once the data node is back, an applied ack comes, and the held one landed too.
	c.RestartData(t, 0)
	if _, err := cl.Publish(ctx, "com.example.applied", []byte("v"), client.WithAck(client.AckApplied)); err != nil {
		t.Fatal(err)
	}
	if got := leaderHas(t, c, "com.example.applied"); len(got) != 1 {
		t.Fatalf("applied after the restart, the leader holds %q", got)
	}
	// An unknown level is refused before anything is sent.
	if _, err := cl.Publish(ctx, "com.example.applied", []byte("v"), client.WithAck(7)); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("WithAck(7): %v, want ErrInvalidArgument", err)
	}
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		if got := leaderHas(t, c, "com.example.held"); len(got) != 1 {
			return fmt.Errorf("the held publication has not landed: %q", got)
		}
		return nil
	})
}

func TestClient_PublishMany_PerItemResults_PacedByTheSessionsRate(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1,
		SessionConfig: func(_ int, cfg *session.Config) {
			// A rate the batch is well past: the client must pace itself
			// rather than fail the items the session refuses.
			cfg.RegisterRate, cfg.RegisterBurst = 400, 50
		}})
	c.WaitDataSettled(t)
	ctx := sdktest.Ctx(t)
	cl := sdktest.New(t, c, client.WithSessions(sessionAddrs(c, 1)...))
	const n = 1200
	items := make([]client.PublishItem, n)
	for i := range items {
		items[i] = client.PublishItem{DataID: fmt.Sprintf("com.example.bulk%d", i%40), Value: fmt.Appendf(nil, "10.0.%d.%d:80", i/256, i%256)}
	}
	items[7].DataID = "" // one bad item fails alone
	items[9].Options = []client.RegisterOption{client.WithAck(client.AckApplied)}
	start := time.Now()
	res := cl.PublishMany(ctx, items)
	took := time.Since(start)
	if len(res) != n {
		t.Fatalf("%d results for %d items", len(res), n)
	}
	for i, r := range res {
		switch {
		case i == 7:
			if !errors.Is(r.Err, client.ErrInvalidArgument) || r.Publication != nil {
				t.Fatalf("item 7 (bad key): %v", r.Err)
			}
		case r.Err != nil || r.Publication == nil:
			t.Fatalf("item %d: %v", i, r.Err)
		}
	}
	// Paced, not refused: 1,200 at 400 a second take about three seconds.
	t.Logf("%d registrations in %v at a session rate of 400/s", n, took)
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		total := 0
		for k := range 40 {
			total += len(leaderHas(t, c, fmt.Sprintf("com.example.bulk%d", k)))
		}
		if total != n-1 {
			return fmt.Errorf("the slot leaders hold %d of %d publications", total, n-1)
		}
		return nil
	})
}
