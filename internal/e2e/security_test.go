//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	gossip "github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/pki"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// TestProcesses_Outsiders_AreRefusedEverywhere runs the cluster as make
// run does (credentials on every process) and tries it as an outsider
// would: without the gossip key it never enters the pool, while a keyed
// session started after it does; without a certificate or token no node
// answers a call; with a certificate of another CA no node completes the
// handshake; a data node's real certificate cannot register as a session;
// a client's certificate cannot act as a node; admin HTTP serves /readyz
// to anyone over TLS, /api only to an operator, nothing in plaintext.
func TestProcesses_Outsiders_AreRefusedEverywhere(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)

	// Gossip: an outsider without the key tries every meta node's pool
	// (its log counts the failed attempts); a session with the key,
	// started after it, joins.
	attempts := &joinLog{}
	outsider, err := gossip.New(gossip.Config{NodeID: "outsider", BindAddr: "127.0.0.1", Profile: "local", Join: c.gossipSeeds(),
		RetryJoin: 100 * time.Millisecond, Meta: gossip.Meta{Role: gossip.RoleData, GRPC: "127.0.0.1:1"}}, slog.New(attempts), nil)
	if err != nil {
		t.Fatal(err)
	}
	jctx, jstop := context.WithCancel(ctx)
	joined := make(chan struct{})
	go func() { defer close(joined); _ = outsider.JoinLoop(jctx) }()
	t.Cleanup(func() { jstop(); <-joined; outsider.Kill() })
	keyed := c.addKeyedSession(t, "session-2")
	c.waitReady(t, []*node{keyed})

	calls := func(opts ...grpc.DialOption) map[*node]error {
		out := map[*node]error{}
		for _, n := range c.nodes {
			conn, err := grpc.NewClient(n.addrs.GRPC, opts...)
			if err != nil {
				t.Fatal(err)
			}
			cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
			switch n.role {
			case "meta":
				_, err = registryv1.NewMetaServiceClient(conn).GetLeader(cctx, &registryv1.GetLeaderRequest{})
			case "data":
				_, err = registryv1.NewDataServiceClient(conn).GetVersions(cctx, &registryv1.GetVersionsRequest{DataInfoIds: []string{"a#@#b#@#c"}})
			case "session":
				_, err = registryv1.NewSessionSyncServiceClient(conn).SlotDigests(cctx, &registryv1.SessionSlotDigestsRequest{SlotIds: []uint32{0}})
			}
			ccancel()
			_ = conn.Close()
			out[n] = err
		}
		return out
	}
	caOnly := func() *tls.Config {
		cr, err := tlsconf.Load(tlsconf.Config{CAFile: c.creds.CA()}, e2eCluster)
		if err != nil {
			t.Fatal(err)
		}
		return cr.Client(identity.AnyNode)
	}()
	// Another cluster's CA, with the same cluster name.
	foreignDir := tlsconf.Dir(filepath.Join(t.TempDir(), "foreign"))
	if _, err := pki.Init(foreignDir, pki.Plan{Cluster: e2eCluster, Data: []string{"data-0"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	foreign, err := tls.LoadX509KeyPair(foreignDir.Cert(identity.RoleData, "data-0"), foreignDir.Key(identity.RoleData, "data-0"))
	if err != nil {
		t.Fatal(err)
	}
	// Presented whatever CAs the server asks for, as an attacker would:
	// crypto/tls's client sends none of its Certificates that no asked-for
	// CA signed.
	foreignTLS := caOnly.Clone()
	foreignTLS.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &foreign, nil }
	// Each refusal must be the one named, not merely Unavailable, which a
	// node that is down answers too ("connection refused"): grpc-go reports
	// a server that speaks no HTTP/2 in clear, and the server's TLS alert,
	// in the connection error. In TLS 1.3 the client finishes its side of
	// the handshake before the server judges its certificate, so it may
	// be writing when the server's alert and close arrive: then it sees
	// the closed connection instead of the alert.
	var (
		noHTTP2   = refusal{codes.Unavailable, []string{"preface"}}
		tlsAlert  = refusal{codes.Unavailable, []string{"remote error: tls:", "broken pipe", "connection reset by peer"}}
		anonymous = refusal{codes.Unauthenticated, nil}
	)
	for name, tc := range map[string]struct {
		opts []grpc.DialOption
		want func(role string) refusal
	}{
		"plaintext": {[]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, func(string) refusal { return noHTTP2 }},
		// Meta and sessions serve token holders, so the handshake passes
		// and the call is refused; data nodes demand a certificate.
		"TLS without a certificate": {[]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(caOnly))}, func(role string) refusal {
			if role == "data" {
				return tlsAlert
			}
			return anonymous
		}},
		"a certificate of another CA": {[]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(foreignTLS))}, func(string) refusal { return tlsAlert }},
	} {
		for n, err := range calls(tc.opts...) {
			if want := tc.want(n.role); !want.is(err) {
				t.Errorf("%s to %s: %v, want %s", name, n.id, err, want)
			}
		}
	}

	// A real data node's certificate registering as a session, and a real
	// client's certificate asking for a data node's records or registering
	// as a node: refused.
	asIdentity := func(role identity.Role, name string) *grpc.ClientConn {
		cr, err := tlsconf.Load(c.creds.TLS(role, name), e2eCluster)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(c.metas[0].addrs.GRPC, grpc.WithTransportCredentials(credentials.NewTLS(cr.Client(identity.Peer{Role: identity.RoleMeta}))))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	register := func(conn *grpc.ClientConn, id string, role registryv1.Role) error {
		_, err := registryv1.NewMetaServiceClient(conn).RegisterNode(ctx, &registryv1.RegisterNodeRequest{Node: &registryv1.Node{Id: id, Role: role, GrpcAddress: "127.0.0.1:1"}})
		return err
	}
	if err := register(asIdentity(identity.RoleData, "data-0"), "data-0", registryv1.Role_ROLE_SESSION); status.Code(err) != codes.PermissionDenied {
		t.Errorf("data-0's certificate registering as a session: %v", err)
	}
	if err := register(asIdentity(identity.RoleData, "data-0"), "data-1", registryv1.Role_ROLE_DATA); status.Code(err) != codes.PermissionDenied {
		t.Errorf("data-0's certificate registering as data-1: %v", err)
	}
	if err := register(asIdentity(identity.RoleClient, e2eClient), e2eClient, registryv1.Role_ROLE_DATA); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a client's certificate registering as a data node: %v", err)
	}

	// Admin HTTP without an operator: /readyz open over TLS on every node,
	// /api refused, nothing served in plaintext.
	anon := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: caOnly}}
	for _, n := range c.nodes {
		resp, err := anon.Get("https://" + n.addrs.HTTP + "/readyz")
		if err != nil {
			t.Errorf("/readyz of %s over TLS without a certificate: %v", n.id, err)
			continue
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("/readyz of %s over TLS without a certificate: %s, want 200", n.id, resp.Status)
		}
	}
	resp, err := anon.Get("https://" + c.metas[0].addrs.HTTP + "/api/v1/members")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/api/v1/members without an operator: %s, want 401", resp.Status)
	}
	if resp, err := anon.Get("http://" + c.metas[0].addrs.HTTP + "/readyz"); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("admin HTTP served plaintext")
		}
	}

	// The keyed session, started after the outsider, is in the pool (its
	// join contacted a seed) and a member. The outsider has tried the pool
	// again since; the members (which meta serves from registrations) and
	// its own pool view would show it had it got in.
	testcluster.Eventually(t, settleWait, func() error {
		if !keyed.logged("joined gossip pool") {
			return fmt.Errorf("%s has not joined the gossip pool", keyed.id)
		}
		var v membersView
		if err := c.metaGet("/api/v1/members", &v); err != nil {
			return err
		}
		if !slices.ContainsFunc(v.Members, func(m memberRow) bool { return m.ID == keyed.id }) {
			return fmt.Errorf("%s is not a member", keyed.id)
		}
		return nil
	})
	before := attempts.failed()
	testcluster.Eventually(t, settleWait, func() error {
		if n := attempts.failed(); n < before+2 {
			return fmt.Errorf("the outsider failed %d join attempts, %d of them since %s joined; want 2 since", n, n-before, keyed.id)
		}
		return nil
	})
	if attempts.succeeded() {
		t.Error("the outsider logged that it joined the pool")
	}
	var members membersView
	if err := c.metaGet("/api/v1/members", &members); err != nil {
		t.Fatal(err)
	}
	for _, m := range members.Members {
		if m.ID == "outsider" {
			t.Fatal("the outsider became a member")
		}
	}
	for _, m := range outsider.Members() {
		if m.ID != "outsider" {
			t.Fatalf("the outsider sees %s: it got into the pool", m.ID)
		}
	}
}

// addKeyedSession issues a certificate for the session node id with the
// cluster's CA, and starts it with the cluster's credentials (the gossip
// key among them), as an operator adds a node.
func (c *cluster) addKeyedSession(t *testing.T, id string) *node {
	t.Helper()
	ca, err := pki.LoadCA(c.creds)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.Issue(c.creds, ca, identity.ID{Cluster: e2eCluster, Role: identity.RoleSession, Name: id}, []string{"127.0.0.1"}, time.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	return c.addSession(t, id)
}

// refusal is how a call must fail: its code and, unless empty, a part of
// its message.
type refusal struct {
	code codes.Code
	// texts: the message holds one of them (none: any message).
	texts []string
}

func (r refusal) is(err error) bool {
	st := status.Convert(err)
	if err == nil || st.Code() != r.code {
		return false
	}
	if len(r.texts) == 0 {
		return true
	}
	for _, t := range r.texts {
		if strings.Contains(st.Message(), t) {
			return true
		}
	}
	return false
}

func (r refusal) String() string {
	if len(r.texts) == 0 {
		return r.code.String()
	}
	return fmt.Sprintf("%s with one of %q", r.code, r.texts)
}

// joinLog is a slog.Handler for a gossip agent that counts its failed
// attempts to join the pool and notes a successful one.
type joinLog struct {
	mu       sync.Mutex
	failures int
	joined   bool
}

func (j *joinLog) Enabled(context.Context, slog.Level) bool { return true }

func (j *joinLog) Handle(_ context.Context, r slog.Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case strings.HasPrefix(r.Message, "join gossip pool failed"):
		j.failures++
	case r.Message == "joined gossip pool":
		j.joined = true
	}
	return nil
}

func (j *joinLog) WithAttrs([]slog.Attr) slog.Handler { return j }
func (j *joinLog) WithGroup(string) slog.Handler      { return j }

func (j *joinLog) failed() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.failures
}

func (j *joinLog) succeeded() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.joined
}
