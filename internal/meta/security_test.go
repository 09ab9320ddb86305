package meta_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/meta"
	"github.com/strata-registry/strata/internal/pki"
	"github.com/strata-registry/strata/internal/rpc"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/wire"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// TestMeta_NodeCalls_OnlyAsTheCallersOwnIdentity: a node registers and
// heartbeats only as itself (its certificate names it), on the leader and
// through a follower (which forwards whom the call is for); other node
// certificates, clients and operators are refused and nothing changes.
func TestMeta_NodeCalls_OnlyAsTheCallersOwnIdentity(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3})
	c.StartPeer(t, "data-0", cluster.RoleData).SetSynced(true)
	leader := c.WaitLeader(t)
	testcluster.Eventually(t, testcluster.DefaultWait, func() error { return fullTable(leader.Server().State()) })
	var follower *testcluster.MetaNode
	for _, n := range c.LiveMetas() {
		if n != leader {
			follower = n
		}
	}
	call := func(as identity.ID, target *testcluster.MetaNode, f func(registryv1.MetaServiceClient) error) error {
		conn := c.DialAs(t, target.Server().GRPCAddr(), as.Role, as.Name)
		defer conn.Close()
		return f(registryv1.NewMetaServiceClient(conn))
	}
	register := func(id string, role registryv1.Role, addr string) func(registryv1.MetaServiceClient) error {
		return func(cl registryv1.MetaServiceClient) error {
			_, err := cl.RegisterNode(ctxT(t), &registryv1.RegisterNodeRequest{Node: &registryv1.Node{Id: id, Role: role, GrpcAddress: addr}})
			return err
		}
	}
	heartbeat := func(id string) func(registryv1.MetaServiceClient) error {
		return func(cl registryv1.MetaServiceClient) error {
			_, err := cl.Heartbeat(ctxT(t), &registryv1.HeartbeatRequest{NodeId: id, Slots: []*registryv1.SlotSync{{SlotId: 1, Synced: false}}})
			return err
		}
	}
	as := func(role identity.Role, name string) identity.ID { return identity.ID{Role: role, Name: name} }

	// Refused, at the leader and through the follower.
	for _, tc := range []struct {
		name string
		as   identity.ID
		call func(registryv1.MetaServiceClient) error
		code codes.Code
	}{
		{"data cert registers as a session", as(identity.RoleData, "session-x"), register("session-x", registryv1.Role_ROLE_SESSION, "127.0.0.1:1"), codes.PermissionDenied},
		{"session registers under another id", as(identity.RoleSession, "session-y"), register("session-x", registryv1.Role_ROLE_SESSION, "127.0.0.1:1"), codes.PermissionDenied},
		{"data node re-registers another's id", as(identity.RoleData, "data-1"), register("data-0", registryv1.Role_ROLE_DATA, "127.0.0.1:1"), codes.PermissionDenied},
		{"client registers as a data node", as(identity.RoleClient, testcluster.ClientName), register(testcluster.ClientName, registryv1.Role_ROLE_DATA, "127.0.0.1:1"), codes.PermissionDenied},
		{"operator registers as a session", as(identity.RoleAdmin, testcluster.AdminName), register(testcluster.AdminName, registryv1.Role_ROLE_SESSION, "127.0.0.1:1"), codes.PermissionDenied},
		{"heartbeat as another data node", as(identity.RoleData, "data-1"), heartbeat("data-0"), codes.PermissionDenied},
		{"session heartbeats as a data node", as(identity.RoleSession, "data-0"), heartbeat("data-0"), codes.PermissionDenied},
		{"client reads the cluster info", as(identity.RoleClient, testcluster.ClientName), func(cl registryv1.MetaServiceClient) error {
			_, err := cl.GetClusterInfo(ctxT(t), &registryv1.GetClusterInfoRequest{})
			return err
		}, codes.PermissionDenied},
		{"client watches the slot table", as(identity.RoleClient, testcluster.ClientName), func(cl registryv1.MetaServiceClient) error {
			s, err := cl.WatchSlotTable(ctxT(t), &registryv1.WatchSlotTableRequest{})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}, codes.PermissionDenied},
	} {
		for _, target := range []*testcluster.MetaNode{leader, follower} {
			t.Run(target.ID+"/"+tc.name, func(t *testing.T) {
				before := leader.Server().State()
				err := call(tc.as, target, tc.call)
				if status.Code(err) != tc.code {
					t.Fatalf("got %v, want %v", err, tc.code)
				}
				if after := leader.Server().State(); after.Index != before.Index {
					t.Fatalf("a refused call changed the state: index %d -> %d", before.Index, after.Index)
				}
			})
		}
	}

	// The node itself, through the follower: served, and judged at the
	// leader as itself (forwarded for).
	if err := call(as(identity.RoleSession, "session-x"), follower, register("session-x", registryv1.Role_ROLE_SESSION, "127.0.0.1:1")); err != nil {
		t.Fatalf("session-x registering itself through a follower: %v", err)
	}
	if err := call(as(identity.RoleSession, "session-x"), follower, heartbeat("session-x")); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("session-x heartbeating slots: %v, want InvalidArgument (sessions hold no slots)", err)
	}
	// A client may find sessions and the leader.
	if err := call(as(identity.RoleClient, testcluster.ClientName), follower, func(cl registryv1.MetaServiceClient) error {
		_, err := cl.ListSessions(ctxT(t), &registryv1.ListSessionsRequest{})
		return err
	}); err != nil {
		t.Fatalf("client ListSessions: %v", err)
	}
}

// TestMeta_RefusesPlaintextAndAnonymousCallers: without a certificate or a
// token nothing is served; a token the tokens file does not list neither.
func TestMeta_RefusesPlaintextAndAnonymousCallers(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1})
	addr := c.WaitLeader(t).Server().GRPCAddr()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	getLeader := func(opts ...grpc.DialOption) error {
		conn, err := grpc.NewClient(addr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = registryv1.NewMetaServiceClient(conn).GetLeader(ctx, &registryv1.GetLeaderRequest{})
		return err
	}
	if err := getLeader(grpc.WithTransportCredentials(insecure.NewCredentials())); err == nil {
		t.Error("a plaintext client was served")
	}
	caOnly := c.ClientTLS(t).Clone()
	caOnly.Certificates = nil
	if err := getLeader(grpc.WithTransportCredentials(credentials.NewTLS(caOnly))); status.Code(err) != codes.Unauthenticated ||
		!strings.Contains(err.Error(), "certificate or a bearer token is required") {
		t.Errorf("a client without certificate or token: %v, want Unauthenticated", err)
	}
	if err := getLeader(grpc.WithTransportCredentials(credentials.NewTLS(caOnly)), grpc.WithPerRPCCredentials(wire.Bearer("forged"))); status.Code(err) != codes.Unauthenticated {
		t.Errorf("an unknown token: %v, want Unauthenticated", err)
	}
	if err := getLeader(grpc.WithTransportCredentials(credentials.NewTLS(caOnly)),
		grpc.WithPerRPCCredentials(wire.Bearer(c.Token(t, identity.RoleClient, testcluster.ClientName)))); err != nil {
		t.Errorf("the test client's token: %v", err)
	}
	// A certificate from another CA fails the handshake.
	other := testcluster.Start(t, testcluster.Spec{Meta: 1})
	foreign := other.ClientTLS(t).Clone()
	foreign.RootCAs = c.ClientTLS(t).RootCAs
	if err := getLeader(grpc.WithTransportCredentials(credentials.NewTLS(foreign))); err == nil {
		t.Error("a certificate signed by another cluster's CA was served")
	}
}

// TestMeta_RaftPort_OnlyMetaNodes: the Raft port completes a TLS handshake
// only with a meta node's certificate; a data node's, a client's or no
// certificate (plaintext Raft bytes) is cut off, and the state stays.
func TestMeta_RaftPort_OnlyMetaNodes(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1})
	leader := c.WaitLeader(t)
	addr := leader.Server().RaftAddr()
	index := leader.Server().State().Index
	dial := func(role identity.Role, name string) error {
		cfg := c.Creds(t, role, name).Client(identity.Peer{Role: identity.RoleMeta})
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
		if err != nil {
			return err
		}
		defer conn.Close()
		// TLS 1.3 finishes the client's side first: the server's verdict
		// on the client's certificate arrives with the first read.
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return nil // accepted: Raft waits for a request
		}
		return err
	}
	if err := dial(identity.RoleMeta, "meta-0"); err != nil {
		t.Fatalf("a meta node's certificate: %v", err)
	}
	for _, who := range []identity.ID{{Role: identity.RoleData, Name: "data-0"}, {Role: identity.RoleClient, Name: testcluster.ClientName}, {Role: identity.RoleAdmin, Name: testcluster.AdminName}} {
		if err := dial(who.Role, who.Name); err == nil {
			t.Errorf("a %s certificate was accepted on the Raft port", who.Role)
		}
	}
	// Plaintext: an AppendEntries-looking byte stream gets nothing back.
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	_, _ = conn.Write(append([]byte{0}, make([]byte, 64)...)) // rpcAppendEntries, then junk
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Error("a plaintext peer was answered on the Raft port")
	}
	if leader.Server().State().Index != index || !leader.Server().IsLeader() {
		t.Error("a refused Raft peer changed the leader's state")
	}
}

// agent joins the cluster's gossip pool as id with role and keys (nil:
// plaintext), announcing grpc (and raft for a meta node). It stops at
// cleanup.
func agent(t *testing.T, c *testcluster.Cluster, id string, role cluster.Role, keys [][]byte, grpcAddr, raftAddr string) *cluster.Agent {
	t.Helper()
	a, err := cluster.New(cluster.Config{NodeID: id, BindAddr: "127.0.0.1", Profile: "local", Join: c.GossipSeeds(),
		RetryJoin: 50 * time.Millisecond, Keys: keys, Meta: cluster.Meta{Role: role, GRPC: grpcAddr, HTTP: grpcAddr, Raft: raftAddr}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.JoinLoop(ctx) }()
	t.Cleanup(func() { cancel(); <-done; a.Kill() })
	return a
}

// inPool reports whether the meta node sees id alive in its pool.
func inPool(n *testcluster.MetaNode, id string) bool {
	for _, m := range n.Server().Agent().Members() {
		if m.ID == id && m.State == cluster.StateAlive {
			return true
		}
	}
	return false
}

// TestMeta_MembershipIsProven_NotGossiped: without the gossip key a node
// never enters the pool; with it (a stolen key) but no registration it is
// in the pool and still no member, gets no slot, and its death changes
// nothing; a node that registered (proved its certificate) is a member.
func TestMeta_MembershipIsProven_NotGossiped(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3})
	leader := c.WaitLeader(t)
	wrong, err := cluster.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   string
		keys [][]byte
	}{{"plain-outsider", nil}, {"wrong-key-outsider", [][]byte{wrong}}} {
		agent(t, c, tc.id, cluster.RoleData, tc.keys, "127.0.0.1:1", "")
	}
	agent(t, c, "gossip-only", cluster.RoleData, c.GossipKeys(t), "127.0.0.1:2", "")
	// A real data node joins after the outsiders, registers, and takes
	// slots: by then the leader has had every chance to admit the others.
	c.StartPeer(t, "data-0", cluster.RoleData).SetSynced(true)
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		st := leader.Server().State()
		if err := fullTable(st); err != nil {
			return err
		}
		if !inPool(leader, "gossip-only") {
			return fmt.Errorf("the key holder is not in the pool yet")
		}
		return nil
	})
	for _, n := range c.LiveMetas() {
		for _, id := range []string{"plain-outsider", "wrong-key-outsider"} {
			if inPool(n, id) {
				t.Errorf("%s sees %s in the gossip pool", n.ID, id)
			}
		}
	}
	st := leader.Server().State()
	for _, id := range []string{"plain-outsider", "wrong-key-outsider", "gossip-only"} {
		if _, ok := st.Members[id]; ok {
			t.Errorf("%s became a member without registering", id)
		}
		for _, sl := range st.Table.Slots {
			if string(sl.Leader) == id || slices.Contains(sl.Followers, slot.NodeID(id)) {
				t.Fatalf("%s holds slot %d", id, sl.ID)
			}
		}
	}
	if _, ok := st.Members["data-0"]; !ok {
		t.Error("the registered data node is not a member")
	}
}

// TestMeta_ImpostorMeta_NeverBecomesVoter: a process with the gossip key
// announces itself as a meta node, with a gRPC server that holds a data
// node's certificate; the leader asks it to prove it is that meta node,
// it cannot, and it never enters the Raft configuration, while a real meta
// node added after it becomes a voter.
func TestMeta_ImpostorMeta_NeverBecomesVoter(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3})
	ln := testcluster.Listen(t)
	gs := grpc.NewServer(rpc.ServerOptions(c.Creds(t, identity.RoleData, "meta-9"), tls.RequireAndVerifyClientCert, 1<<20)...)
	// It answers what the leader asks a meta node, and looks caught up:
	// only its certificate can give it away.
	registryv1.RegisterMetaServiceServer(gs, answeringMeta{})
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	raftLn := testcluster.Listen(t)
	t.Cleanup(func() { _ = raftLn.Close() })
	agent(t, c, "meta-9", cluster.RoleMeta, c.GossipKeys(t), ln.Addr().String(), raftLn.Addr().String())

	real := c.AddMeta(t)
	config := func() (map[string]bool, error) {
		info, err := metaClient(t, c, c.WaitLeader(t).Server().GRPCAddr()).GetClusterInfo(ctxT(t), &registryv1.GetClusterInfoRequest{})
		if err != nil {
			return nil, err
		}
		out := map[string]bool{}
		for _, p := range info.GetMeta() {
			out[p.GetId()] = p.GetVoter()
		}
		return out, nil
	}
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		cfg, err := config()
		if err != nil {
			return err
		}
		if !cfg[real.ID] {
			return fmt.Errorf("raft configuration %v: %s not a voter yet", cfg, real.ID)
		}
		if !inPool(c.WaitLeader(t), "meta-9") {
			return fmt.Errorf("the impostor is not in the leader's pool yet")
		}
		return nil
	})
	// The leader has had its chance to judge the impostor once it said
	// why it refused it.
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		for _, n := range c.LiveMetas() {
			if strings.Contains(testcluster.LogOf(t, n.Dir), "cannot prove itself") {
				return nil
			}
		}
		return fmt.Errorf("no leader said why it refused the impostor")
	})
	cfg, err := config()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg["meta-9"]; ok {
		t.Fatalf("the impostor is in the Raft configuration: %v", cfg)
	}
}

// answeringMeta is an impostor's MetaService: it knows a leader and claims
// a commit index no real node has reached.
type answeringMeta struct {
	registryv1.UnimplementedMetaServiceServer
}

func (answeringMeta) GetLeader(context.Context, *registryv1.GetLeaderRequest) (*registryv1.GetLeaderResponse, error) {
	return &registryv1.GetLeaderResponse{Leader: &registryv1.MetaPeer{Id: "meta-9"}, Term: 1}, nil
}

func (answeringMeta) GetClusterInfo(context.Context, *registryv1.GetClusterInfoRequest) (*registryv1.GetClusterInfoResponse, error) {
	return &registryv1.GetClusterInfoResponse{CommitIndex: 1 << 40}, nil
}

// TestMeta_InvalidUTF8_InvalidArgument_NotInternal: a request whose string
// field is not UTF-8 is the caller's error (InvalidArgument, naming UTF-8),
// and changes nothing.
func TestMeta_InvalidUTF8_InvalidArgument_NotInternal(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1})
	leader := c.WaitLeader(t)
	conn := c.DialAs(t, leader.Server().GRPCAddr(), identity.RoleData, "data-0")
	defer conn.Close()
	// RegisterNodeRequest{node: {id: "\xff", role: ROLE_DATA, grpc_address: "127.0.0.1:1"}}, by hand.
	var node []byte
	node = protowire.AppendTag(node, 1, protowire.BytesType)
	node = protowire.AppendString(node, "\xff")
	node = protowire.AppendTag(node, 2, protowire.VarintType)
	node = protowire.AppendVarint(node, uint64(registryv1.Role_ROLE_DATA))
	node = protowire.AppendTag(node, 3, protowire.BytesType)
	node = protowire.AppendString(node, "127.0.0.1:1")
	req := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), node)
	before := leader.Server().State().Index
	var resp []byte
	err := conn.Invoke(ctxT(t), registryv1.MetaService_RegisterNode_FullMethodName, &req, &resp, grpc.ForceCodecV2(testcluster.RawCodec{}))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("got %v, want InvalidArgument naming UTF-8", err)
	}
	if leader.Server().State().Index != before {
		t.Error("the request changed the state")
	}
}

// TestMeta_Enroll_IssuesOnlyWhatTheEnrollTokenAllows: a meta node holding
// the CA key signs a certificate naming the new session node, for the key
// of its request, to an enroll token whose entry lists sessions; it
// refuses other roles, ids that are members, other identities, bad
// requests, and (without the CA key) everything.
func TestMeta_Enroll_IssuesOnlyWhatTheEnrollTokenAllows(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 2, MetaConfig: func(i int, cfg *meta.Config) {
		if i == 0 {
			cfg.CAKeyFile = filepath.Join(filepath.Dir(cfg.TLS.CAFile), "ca-key.pem") // the harness's tlsconf.Dir
		}
	}})
	c.StartPeer(t, "session-old", cluster.RoleSession)
	agent(t, c, "gossip-only", cluster.RoleSession, c.GossipKeys(t), "127.0.0.1:1", "")
	// The issuer must know both before it is asked (it may be a follower).
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		if _, ok := c.Meta(0).Server().State().Members["session-old"]; !ok {
			return fmt.Errorf("meta-0 has not applied session-old's registration")
		}
		if !inPool(c.Meta(0), "gossip-only") {
			return fmt.Errorf("meta-0 does not see gossip-only in its pool")
		}
		return nil
	})
	const tok = "enroll-token-0123456789abcdef"
	c.SetIdentities(t, access.Entry{Name: "sessions", Role: identity.RoleEnroll, TokenSHA256: access.HashToken(tok), Enroll: []identity.Role{identity.RoleSession}})
	issuer, other := c.Meta(0), c.Meta(1)
	_, csr, err := pki.NewRequest()
	if err != nil {
		t.Fatal(err)
	}
	caOnly := c.ClientTLS(t).Clone()
	caOnly.Certificates = nil
	enroll := func(n *testcluster.MetaNode, token string, req *registryv1.EnrollRequest) (*registryv1.EnrollResponse, error) {
		conn, err := grpc.NewClient(n.Server().GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(caOnly)), grpc.WithPerRPCCredentials(wire.Bearer(token)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return registryv1.NewMetaServiceClient(conn).Enroll(ctxT(t), req)
	}
	good := &registryv1.EnrollRequest{Csr: csr, Role: registryv1.Role_ROLE_SESSION, NodeId: "session-new", Hosts: []string{"session-new", "localhost", "127.0.0.1"}}
	resp, err := enroll(issuer, tok, good)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(resp.GetCertificate())
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := identity.FromCert(cert); err != nil || id != (identity.ID{Cluster: testcluster.Name, Role: identity.RoleSession, Name: "session-new"}) {
		t.Fatalf("issued certificate names %v (%v)", id, err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(resp.GetCa())
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "session-new"}); err != nil {
		t.Errorf("issued certificate does not verify for its host: %v", err)
	}
	for _, tc := range []struct {
		name  string
		n     *testcluster.MetaNode
		token string
		edit  func(*registryv1.EnrollRequest)
		code  codes.Code
	}{
		{"a meta node", issuer, tok, func(r *registryv1.EnrollRequest) { r.Role = registryv1.Role_ROLE_META }, codes.InvalidArgument},
		{"a role the entry does not list", issuer, tok, func(r *registryv1.EnrollRequest) { r.Role = registryv1.Role_ROLE_DATA }, codes.PermissionDenied},
		{"the id of a member", issuer, tok, func(r *registryv1.EnrollRequest) { r.NodeId = "session-old" }, codes.AlreadyExists},
		{"the id of a meta node", issuer, tok, func(r *registryv1.EnrollRequest) { r.NodeId = other.ID }, codes.AlreadyExists},
		{"the id of a gossip member that has not registered", issuer, tok, func(r *registryv1.EnrollRequest) { r.NodeId = "gossip-only" }, codes.AlreadyExists},
		{"another host's name", issuer, tok, func(r *registryv1.EnrollRequest) { r.Hosts = []string{other.ID} }, codes.InvalidArgument},
		{"an IP address it does not come from", issuer, tok, func(r *registryv1.EnrollRequest) { r.Hosts = []string{"10.1.2.3"} }, codes.InvalidArgument},
		{"a bad id", issuer, tok, func(r *registryv1.EnrollRequest) { r.NodeId = "a/b" }, codes.InvalidArgument},
		{"a bad host", issuer, tok, func(r *registryv1.EnrollRequest) { r.Hosts = []string{"no spaces"} }, codes.InvalidArgument},
		{"a request that is not one", issuer, tok, func(r *registryv1.EnrollRequest) { r.Csr = []byte("junk") }, codes.InvalidArgument},
		{"a client's token", issuer, c.Token(t, identity.RoleClient, testcluster.ClientName), func(*registryv1.EnrollRequest) {}, codes.PermissionDenied},
		{"an unknown token", issuer, "nope", func(*registryv1.EnrollRequest) {}, codes.Unauthenticated},
		{"a meta node without the CA key", other, tok, func(*registryv1.EnrollRequest) {}, codes.FailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := proto.Clone(good).(*registryv1.EnrollRequest)
			req.NodeId, req.Hosts = "session-other", []string{"localhost", "127.0.0.1"}
			tc.edit(req)
			if _, err := enroll(tc.n, tc.token, req); status.Code(err) != tc.code {
				t.Fatalf("got %v, want %v", err, tc.code)
			}
		})
	}
}
