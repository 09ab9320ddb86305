package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/sdktest"
	"github.com/strata-registry/strata/internal/session"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/identity"
)

const wait = testcluster.DefaultWait

func sessionAddrs(c *testcluster.Cluster, n int) []string {
	var out []string
	for i := range n {
		out = append(out, c.Session(i).Server().GRPCAddr())
	}
	return out
}

func datas(s client.Snapshot) []string {
	var out []string
	for _, v := range s.Values {
		out = append(out, string(v.Data))
	}
	slices.Sort(out)
	return out
}

// nextUntil reads snapshots until want holds, failing on any that check
// rejects (check may be nil) or on a version going back.
func nextUntil(t *testing.T, s *client.Subscription, check func(client.Snapshot) error, want func(client.Snapshot) bool) client.Snapshot {
	t.Helper()
	ctx := sdktest.Ctx(t)
	var last uint64
	for {
		snap, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if !snap.Cached && snap.Version < last {
			t.Fatalf("version went back from %d to %d", last, snap.Version)
		}
		last = snap.Version
		if check != nil {
			if err := check(snap); err != nil {
				t.Fatal(err)
			}
		}
		if want(snap) {
			return snap
		}
	}
}

func holds(vals ...string) func(client.Snapshot) bool {
	return func(s client.Snapshot) bool { return slices.Equal(datas(s), vals) }
}

func TestClient_PublishSubscribeUpdateUnpublish(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, Session: 2})
	c.WaitDataSettled(t)
	ctx := sdktest.Ctx(t)
	pubc := sdktest.New(t, c, client.WithSessions(sessionAddrs(c, 1)...), client.WithZone("z1"))
	subc := sdktest.New(t, c, client.WithMeta(c.MetaAddrs()...))

	s, err := subc.Subscribe(ctx, "com.example.Echo", client.WithGroup("RPC"))
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.Next(ctx)
	if err != nil || len(first.Values) != 0 || first.Cached {
		t.Fatalf("first snapshot %+v, %v; want live and empty", first, err)
	}
	p, err := pubc.Publish(ctx, "com.example.Echo", []byte("10.0.0.1:8080"), client.WithGroup("RPC"))
	if err != nil {
		t.Fatal(err)
	}
	got := nextUntil(t, s, nil, holds("10.0.0.1:8080"))
	if v := got.Values[0]; v.Zone != "z1" || v.PublisherID != p.RegisterID() || got.Version <= first.Version {
		t.Fatalf("pushed %+v at %d after %d", v, got.Version, first.Version)
	}
	if err := p.Update(ctx, []byte("10.0.0.1:8081"), []byte("10.0.0.1:8082")); err != nil {
		t.Fatal(err)
	}
	upd := nextUntil(t, s, nil, holds("10.0.0.1:8081", "10.0.0.1:8082"))
	if upd.Version <= got.Version {
		t.Fatalf("update at version %d, not after %d", upd.Version, got.Version)
	}
	// Another group is another key: not pushed here.
	if _, err := pubc.Publish(ctx, "com.example.Echo", []byte("other-group")); err != nil {
		t.Fatal(err)
	}
	if err := p.Unpublish(ctx); err != nil {
		t.Fatal(err)
	}
	gone := nextUntil(t, s, func(s client.Snapshot) error {
		if slices.Contains(datas(s), "other-group") {
			return fmt.Errorf("a publication of another group was pushed: %v", datas(s))
		}
		return nil
	}, holds())
	if gone.Version <= upd.Version {
		t.Fatalf("unpublish at version %d, not after %d", gone.Version, upd.Version)
	}
	if err := p.Unpublish(ctx); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("second Unpublish: %v, want ErrClosed", err)
	}
	if err := p.Update(ctx, []byte("x")); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Update after Unpublish: %v, want ErrClosed", err)
	}
}

// A service's list may pass grpc-go's 4 MiB message default; the client
// must still take the push (it used to drop the stream and retry forever).
func TestClient_ListLargerThanGRPCDefault_IsPushed(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, Session: 2})
	c.WaitDataSettled(t)
	ctx := sdktest.Ctx(t)
	pubc := sdktest.New(t, c, client.WithSessions(sessionAddrs(c, 1)...))
	subc := sdktest.New(t, c, client.WithSessions(sessionAddrs(c, 2)[1]))
	s, err := subc.Subscribe(ctx, "com.example.Big")
	if err != nil {
		t.Fatal(err)
	}
	const pubs, valueBytes = 5, 1000 << 10
	for i := range pubs {
		v := strings.Repeat(string(rune('a'+i)), valueBytes)
		if _, err := pubc.Publish(ctx, "com.example.Big", []byte(v)); err != nil {
			t.Fatal(err)
		}
		// One at a time: each list is acked before the next, larger one.
		nextUntil(t, s, nil, func(s client.Snapshot) bool { return len(s.Values) == i+1 })
	}
}

// Two subscriptions of one key on one client get one push naming both,
// and the client acks it once for both: neither waits for a retry.
func TestClient_TwoSubscriptionsOfOneKey_OneAckForBoth(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 1, Session: 1, SessionConfig: func(_ int, cfg *session.Config) {
		cfg.Push.AckTimeout, cfg.Push.RetryMax = time.Minute, time.Minute // a missed ack shows
	}})
	c.WaitDataSettled(t)
	ctx := sdktest.Ctx(t)
	cl := sdktest.New(t, c, client.WithSessions(sessionAddrs(c, 1)...))
	var subs []*client.Subscription
	for range 2 {
		s, err := cl.Subscribe(ctx, "com.example.Twice")
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	if _, err := cl.Publish(ctx, "com.example.Twice", []byte("v")); err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		nextUntil(t, s, nil, holds("v"))
	}
	testcluster.Eventually(t, wait, func() error {
		mfs, err := c.Session(0).Registry.Gather()
		if err != nil {
			return err
		}
		for _, mf := range mfs {
			if mf.GetName() == "strata_push_unacked" {
				if n := mf.GetMetric()[0].GetGauge().GetValue(); n != 0 {
					return fmt.Errorf("%v subscriptions have an unacked push", n)
				}
				return nil
			}
		}
		return errors.New("no strata_push_unacked metric")
	})
}

func TestClient_SessionKilled_FailsOverWithoutEmptyPushes(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, Session: 2})
	c.WaitDataSettled(t)
	ctx := sdktest.Ctx(t)
	addrs := sessionAddrs(c, 2)
	pubc := sdktest.New(t, c, client.WithSessions(addrs...))
	watcher := sdktest.New(t, c, client.WithSessions(addrs...))
	p, err := pubc.Publish(ctx, "svc", []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	// The publisher also subscribes: its own subscription must keep
	// flowing across the failover.
	own, err := pubc.Subscribe(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	other, err := watcher.Subscribe(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	nextUntil(t, own, nil, holds("a"))
	nextUntil(t, other, nil, holds("a"))

	victim := slices.Index(addrs, pubc.Session())
	if victim < 0 {
		t.Fatalf("publisher connected to %q, not one of %v", pubc.Session(), addrs)
	}
	c.StopSession(t, victim, true)
	testcluster.Eventually(t, wait, func() error {
		if s := pubc.Session(); s == "" || s == addrs[victim] {
			return fmt.Errorf("publisher on %q", s)
		}
		return nil
	})
	if err := p.Update(ctx, []byte("b")); err != nil {
		t.Fatal(err)
	}
	never := func(s client.Snapshot) error {
		if len(s.Values) == 0 {
			return errors.New("empty snapshot during the failover")
		}
		return nil
	}
	nextUntil(t, own, never, holds("b"))
	nextUntil(t, other, never, holds("b"))
	// Past the dead session's lease the publication is still there: a
	// later change from elsewhere arrives with it, not instead of it.
	third := sdktest.New(t, c, client.WithSessions(addrs[1-victim]))
	if _, err := third.Publish(ctx, "svc", []byte("c")); err != nil {
		t.Fatal(err)
	}
	nextUntil(t, other, never, holds("b", "c"))
}

func TestClient_ConcurrentUse_CloseTwice_NextReturnsPromptly(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, Session: 1})
	c.WaitDataSettled(t)
	ctx := sdktest.Ctx(t)
	cl := sdktest.New(t, c, client.WithSessions(sessionAddrs(c, 1)...))
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("svc.%d", g%4)
			s, err := cl.Subscribe(ctx, key)
			if err != nil {
				errs <- err
				return
			}
			p, err := cl.Publish(ctx, key, []byte(fmt.Sprint(g)))
			if err != nil {
				errs <- err
				return
			}
			for i := range 5 {
				if err := p.Update(ctx, []byte(fmt.Sprintf("%d.%d", g, i))); err != nil {
					errs <- err
					return
				}
			}
			if _, err := s.Next(ctx); err != nil {
				errs <- err
			}
			if err := p.Unpublish(ctx); err != nil {
				errs <- err
			}
			if err := s.Close(); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	s, err := cl.Subscribe(ctx, "svc.idle")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(ctx); err != nil { // the empty snapshot
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next on a quiet key with a short ctx: %v", err)
	}
	updates := s.Updates()
	done := make(chan error, 1)
	go func() { _, err := s.Next(ctx); done <- err }()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Next blocked across Close returned %v, want ErrClosed", err)
	}
	for range updates { // closed by Close
	}
	if err := s.Close(); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Close(); err != nil {
		t.Fatalf("second client Close: %v", err)
	}
	if _, err := cl.Publish(ctx, "svc", []byte("x")); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
}

func TestClient_DiskCache_ServesWhileClusterDown(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, Session: 1})
	c.WaitDataSettled(t)
	ctx := sdktest.Ctx(t)
	dir := t.TempDir()
	addr := c.Session(0).Server().GRPCAddr()
	pub := sdktest.New(t, c, client.WithSessions(addr))
	if _, err := pub.Publish(ctx, "svc", []byte("cached-value")); err != nil {
		t.Fatal(err)
	}
	live := sdktest.New(t, c, client.WithSessions(addr), client.WithCacheDir(dir))
	s, err := live.Subscribe(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	seen := nextUntil(t, s, nil, holds("cached-value"))
	_ = live.Close()
	c.StopSession(t, 0, true)

	// No session answers now.
	later := sdktest.New(t, c, client.WithSessions(addr), client.WithCacheDir(dir))
	s2, err := later.Subscribe(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := s2.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Cached || snap.Version != seen.Version || !slices.Equal(datas(snap), []string{"cached-value"}) {
		t.Fatalf("while down got %+v, want the cached snapshot at %d", snap, seen.Version)
	}
	// A key never seen live has nothing cached to serve.
	s3, err := later.Subscribe(ctx, "never-seen")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if snap, err := s3.Next(short); err == nil {
		t.Fatalf("an uncached key served %+v while the cluster is down", snap)
	}
}

func TestClient_Errors(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 1, Session: 2, SessionConfig: func(i int, cfg *session.Config) {
		cfg.RegisterRate, cfg.RegisterBurst = 0.01, 2
	}})
	ctx := sdktest.Ctx(t)
	cl := sdktest.New(t, c, client.WithSessions(c.Session(0).Server().GRPCAddr()))
	if _, err := cl.Publish(ctx, "", []byte("x")); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("empty data ID: %v", err)
	}
	if _, err := cl.Publish(ctx, "svc", make([]byte, 2<<20)); !errors.Is(err, client.ErrTooLarge) {
		t.Errorf("2 MiB value: %v", err)
	}
	if _, err := cl.Subscribe(ctx, "svc", client.WithScope(client.Scope(42))); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("unknown scope: %v", err)
	}
	// The burst is 2 registrations, then one per 100s.
	var err error
	for i := range 3 {
		if _, err = cl.Publish(ctx, fmt.Sprintf("svc.%d", i), []byte("x")); err != nil {
			break
		}
	}
	var se *client.Error
	if !errors.Is(err, client.ErrRateLimited) || !errors.As(err, &se) || se.Message == "" {
		t.Errorf("third registration in a burst of 2: %v", err)
	}

	// A client that trusts the cluster's CA but has no certificate and a
	// token the tokens file does not list is refused; with the test
	// client's token it is served.
	// The first dials with a config of its own (WithTLS), the second with
	// WithCredentials holding only the CA.
	other := c.Session(1).Server().GRPCAddr()
	caOnly := c.AnonTLS(t, identity.Peer{Role: identity.RoleSession}, identity.Peer{Role: identity.RoleMeta})
	noToken, err := client.New(ctx, client.WithSessions(other), client.WithTLS(caOnly), client.WithToken("not-a-token"),
		client.WithBackoff(20*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = noToken.Close() })
	if _, err := noToken.Publish(ctx, "svc", []byte("x")); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("unknown token: %v", err)
	}
	if err := noToken.WaitConnected(ctx); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("WaitConnected without the token: %v", err)
	}
	if s, err := noToken.Subscribe(ctx, "svc"); err != nil {
		t.Errorf("Subscribe while refused: %v (it registers on connect)", err)
	} else if _, err := s.Next(ctx); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("Next while the sessions refuse the client: %v", err)
	}
	withToken, err := client.New(ctx, client.WithSessions(other),
		client.WithCredentials(client.Credentials{Cluster: testcluster.Name, CAFile: c.Credentials().CA()}),
		client.WithToken(c.Token(t, identity.RoleClient, testcluster.ClientName)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = withToken.Close() })
	if _, err := withToken.Publish(ctx, "svc", []byte("x")); err != nil {
		t.Errorf("with the token: %v", err)
	}
	if _, err := client.New(ctx, client.WithSessions(other), client.WithToken("t")); err == nil || !strings.Contains(err.Error(), "WithToken needs TLS") {
		t.Errorf("New with a token and no TLS: %v, want the refusal naming WithToken", err)
	}

	if _, err := client.New(ctx); err == nil {
		t.Error("New without sessions or meta succeeded")
	}
	if _, err := client.New(ctx, client.WithSessions("no-port")); err == nil {
		t.Error("New with a bad address succeeded")
	}
	// Nothing listens: a request waits, bounded by its context.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close()
	nobody := sdktest.New(t, c, client.WithSessions(dead))
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := nobody.Publish(short, "svc", []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("publish with no session: %v", err)
	}
	testcluster.Eventually(t, wait, func() error {
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if err := nobody.WaitConnected(short); err == nil || !strings.Contains(err.Error(), "last attempt") || !strings.Contains(err.Error(), dead) {
			return fmt.Errorf("WaitConnected with no session: %v, want the last attempt's error naming %s", err, dead)
		}
		return nil
	})
}

func TestClient_FollowsRedirects_ToBalance(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 1, Session: 2, SessionConfig: func(_ int, cfg *session.Config) {
		cfg.BalanceInterval = 4 * cfg.HeartbeatInterval
	}})
	ctx := sdktest.Ctx(t)
	first := c.Session(0).Server().GRPCAddr()
	var clients []*client.Client
	var pubs []*client.Publication
	for i := range 6 {
		cl := sdktest.New(t, c, client.WithSessions(first))
		p, err := cl.Publish(ctx, "svc", []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		clients, pubs = append(clients, cl), append(pubs, p)
	}
	watch := sdktest.New(t, c, client.WithSessions(first))
	s, err := watch.Subscribe(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	all := holds("0", "1", "2", "3", "4", "5")
	nextUntil(t, s, nil, all)
	testcluster.Eventually(t, wait, func() error {
		n := 0
		for _, cl := range append(clients, watch) {
			if cl.Session() == first {
				n++
			}
		}
		if n > 4 { // 7 clients over 2 sessions: at most 4 stay
			return fmt.Errorf("%d of 7 clients still on the first session", n)
		}
		return nil
	})
	// Everything moved survived the move.
	for i, p := range pubs {
		if err := p.Update(ctx, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := clients[0].Publish(ctx, "svc", []byte("6")); err != nil {
		t.Fatal(err)
	}
	nextUntil(t, s, func(s client.Snapshot) error {
		if len(s.Values) < 6 {
			return fmt.Errorf("publications lost in the move: %v", datas(s))
		}
		return nil
	}, holds("0", "1", "2", "3", "4", "5", "6"))
}

// TestClient_WithCredentials: the credentials files alone (as `registryctl
// certs init` writes them) reach a secure cluster through meta and a
// session, whose certificates are checked for the node they name, not for
// a host. A server that is no session or meta node of the cluster is
// refused in the handshake, and WaitConnected says why: a data node of the
// cluster, a session of another cluster name, a session whose certificate
// another CA signed. Files that do not load, or options that do not fit
// together, fail New, naming the problem.
func TestClient_WithCredentials(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1})
	ctx := sdktest.Ctx(t)
	files := c.TLS(t, identity.RoleClient, testcluster.ClientName)
	creds := client.CredentialsDir(string(c.Credentials()), testcluster.ClientName)
	if creds.CAFile != files.CAFile || creds.CertFile != files.CertFile || creds.KeyFile != files.KeyFile {
		t.Fatalf("CredentialsDir = %+v, want the files %+v", creds, files)
	}
	creds.Cluster = testcluster.Name
	metaAddr := c.Meta(0).Server().GRPCAddr()

	cl, err := client.New(ctx, client.WithMeta(metaAddr), client.WithCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	if _, err := cl.Publish(ctx, "creds.svc", []byte("v1")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	s, err := cl.Subscribe(ctx, "creds.svc")
	if err != nil {
		t.Fatal(err)
	}
	nextUntil(t, s, nil, holds("v1"))

	// Another cluster, with its own CA and the same cluster name: its
	// session's certificate does not chain to this cluster's CA.
	stranger := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1})
	sessionAddr := c.Session(0).Server().GRPCAddr()
	caOnlyOther := client.Credentials{Cluster: "other", CAFile: creds.CAFile}
	for name, tc := range map[string]struct {
		addr  string
		creds client.Credentials
		want  string
	}{
		// The data node's certificate is the cluster's, but no session's.
		"a data node": {c.Data(0).Server().GRPCAddr(), creds, "not any session node or any meta node"},
		// A client (with a token, so no certificate of its own names the
		// cluster) told the cluster is "other".
		"another cluster name": {sessionAddr, caOnlyOther, `of cluster "test", not "other"`},
		"another CA's session": {stranger.Session(0).Server().GRPCAddr(), creds, "certificate signed by unknown authority"},
	} {
		refused, err := client.New(ctx, client.WithSessions(tc.addr), client.WithCredentials(tc.creds),
			client.WithBackoff(20*time.Millisecond, 200*time.Millisecond))
		if err != nil {
			t.Fatalf("%s: New: %v", name, err)
		}
		t.Cleanup(func() { _ = refused.Close() })
		testcluster.Eventually(t, wait, func() error {
			short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			err := refused.WaitConnected(short)
			if err == nil {
				t.Fatalf("%s: connected to %s", name, tc.addr)
			}
			// grpc-go quotes the handshake's error in its own.
			if msg := strings.ReplaceAll(err.Error(), `\"`, `"`); !strings.Contains(msg, "handshake") || !strings.Contains(msg, tc.want) {
				return fmt.Errorf("%s: WaitConnected: %v; want the handshake's refusal saying %q", name, err, tc.want)
			}
			return nil
		})
	}

	wrong := creds
	wrong.Cluster = "other"
	foreign := stranger.TLS(t, identity.RoleClient, testcluster.ClientName) // with this cluster's CA
	sessions := client.WithSessions(sessionAddr)
	for name, tc := range map[string]struct {
		opts []client.Option
		want string
	}{
		"missing CA":           {[]client.Option{client.WithCredentials(client.Credentials{CAFile: filepath.Join(t.TempDir(), "ca.pem")})}, "read CA file"},
		"no files":             {[]client.Option{client.WithCredentials(client.Credentials{})}, "no CA file given"},
		"no CA":                {[]client.Option{client.WithCredentials(client.Credentials{CertFile: files.CertFile, KeyFile: files.KeyFile})}, "a CA file is required"},
		"certificate, no key":  {[]client.Option{client.WithCredentials(client.Credentials{CAFile: files.CAFile, CertFile: files.CertFile})}, "cert file and key file must be set together"},
		"bad cluster name":     {[]client.Option{client.WithCredentials(client.Credentials{Cluster: "a/b", CAFile: files.CAFile})}, `cluster name "a/b"`},
		"another cluster's":    {[]client.Option{client.WithCredentials(wrong)}, `of cluster "test", not "other"`},
		"another CA's":         {[]client.Option{client.WithCredentials(client.Credentials{Cluster: testcluster.Name, CAFile: files.CAFile, CertFile: foreign.CertFile, KeyFile: foreign.KeyFile})}, "is not signed by a CA in"},
		"WithTLS as well":      {[]client.Option{client.WithCredentials(creds), client.WithTLS(c.AnonTLS(t, identity.Peer{Role: identity.RoleSession}))}, "WithTLS and WithCredentials together"},
		"token without either": {[]client.Option{client.WithToken("t")}, "WithToken needs TLS"},
	} {
		cl, err := client.New(ctx, append(tc.opts, sessions)...)
		if err == nil {
			_ = cl.Close()
			t.Errorf("%s: New succeeded", name)
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New: %v, want an error saying %q", name, err, tc.want)
		}
	}
}

// TestClient_PrefixRights_OutsideFailWithErrPermissionDenied: a client
// whose identity may publish and subscribe only under "a." does both
// there; under "b." Publish and Subscribe fail with ErrPermissionDenied
// and the session's message, nothing is stored, and the client goes on
// serving requests it has the right to.
func TestClient_PrefixRights_OutsideFailWithErrPermissionDenied(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1})
	c.WaitDataSettled(t)
	ctx := sdktest.Ctx(t)
	const name = "a-team"
	c.TLS(t, identity.RoleClient, name) // its certificate, in the credentials directory
	c.SetIdentities(t, access.Entry{Name: name, Role: identity.RoleClient, Publish: []string{"a."}, Subscribe: []string{"a."}})
	creds := client.CredentialsDir(string(c.Credentials()), name)
	creds.Cluster = testcluster.Name
	cl, err := client.New(ctx, client.WithSessions(c.Session(0).Server().GRPCAddr()), client.WithCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	if err := cl.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}

	if _, err := cl.Publish(ctx, "a.x", []byte("v")); err != nil {
		t.Fatalf("Publish under a.: %v", err)
	}
	if _, err := cl.Subscribe(ctx, "a.x"); err != nil {
		t.Fatalf("Subscribe under a.: %v", err)
	}
	var se *client.Error
	_, err = cl.Publish(ctx, "b.x", []byte("v"))
	if !errors.Is(err, client.ErrPermissionDenied) || !errors.As(err, &se) || !strings.Contains(se.Message, `may not publish under data ID "b.x"`) {
		t.Errorf("Publish under b.: %v, want ErrPermissionDenied naming the data ID", err)
	}
	if _, err := cl.Subscribe(ctx, "b.x"); !errors.Is(err, client.ErrPermissionDenied) {
		t.Errorf("Subscribe under b.: %v, want ErrPermissionDenied", err)
	}
	// The refusals were the requests', not the connection's.
	if _, err := cl.Publish(ctx, "a.y", []byte("v")); err != nil {
		t.Fatalf("Publish under a. after the refusals: %v", err)
	}
	if n := c.Session(0).Server().Publishers(); n != 2 {
		t.Errorf("the session holds %d publishers, want a.x's and a.y's", n)
	}
}
