//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	gossip "github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/identity"
	"github.com/strata-registry/strata/internal/pki"
	"github.com/strata-registry/strata/internal/tlsconf"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// TestProcesses_Outsiders_AreRefusedEverywhere runs the cluster as make
// run does (credentials on every process) and tries it as an outsider
// would: without the gossip key it never enters the pool; without a
// certificate or token no node answers a call; with a certificate of
// another CA neither; a data node's real certificate cannot register as a
// session; and a client's certificate cannot act as a node.
func TestProcesses_Outsiders_AreRefusedEverywhere(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)

	// Gossip: an outsider without the key tries every meta node's pool;
	// a real session started after it joins while the outsider never does.
	outsider, err := gossip.New(gossip.Config{NodeID: "outsider", BindAddr: "127.0.0.1", Profile: "local", Join: c.gossipSeeds(),
		RetryJoin: 100 * time.Millisecond, Meta: gossip.Meta{Role: gossip.RoleData, GRPC: "127.0.0.1:1"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	jctx, jstop := context.WithCancel(ctx)
	joined := make(chan struct{})
	go func() { defer close(joined); _ = outsider.JoinLoop(jctx) }()
	t.Cleanup(func() { jstop(); <-joined; outsider.Kill() })

	calls := func(opts ...grpc.DialOption) map[string]error {
		out := map[string]error{}
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
			out[n.id] = err
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
	foreignDir := pki.Dir(filepath.Join(t.TempDir(), "foreign"))
	if _, err := pki.Init(foreignDir, pki.Plan{Cluster: e2eCluster, Data: []string{"data-0"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	foreign, err := tls.LoadX509KeyPair(foreignDir.Cert(identity.RoleData, "data-0"), foreignDir.Key(identity.RoleData, "data-0"))
	if err != nil {
		t.Fatal(err)
	}
	foreignTLS := caOnly.Clone()
	foreignTLS.Certificates = []tls.Certificate{foreign}
	for name, opts := range map[string][]grpc.DialOption{
		"plaintext":                   {grpc.WithTransportCredentials(insecure.NewCredentials())},
		"TLS without a certificate":   {grpc.WithTransportCredentials(credentials.NewTLS(caOnly))},
		"a certificate of another CA": {grpc.WithTransportCredentials(credentials.NewTLS(foreignTLS))},
	} {
		for id, err := range calls(opts...) {
			if code := status.Code(err); code != codes.Unavailable && code != codes.Unauthenticated {
				t.Errorf("%s to %s: %v, want refused", name, id, err)
			}
		}
	}

	// A real data node's certificate registering as a session, and a real
	// client's certificate asking for a data node's records or registering
	// as a node: refused.
	asIdentity := func(role identity.Role, name string) *grpc.ClientConn {
		cr, err := tlsconf.Load(tlsconf.Config{CertFile: c.creds.Cert(role, name), KeyFile: c.creds.Key(role, name), CAFile: c.creds.CA()}, e2eCluster)
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

	// Admin HTTP without an operator: /api refused, /readyz open.
	anon := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: caOnly}}
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

	// By now the outsider has tried the pool for seconds; the members
	// (which meta serves from registrations) and every node's pool view
	// would show it had it got in.
	var members struct {
		Members []struct{ ID string } `json:"members"`
	}
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
