package meta_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/meta"
	"github.com/strata-registry/strata/internal/node"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

func TestMeta_BadInput_ClearStatus_ChangesNothing(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3})
	c.StartPeer(t, "data-0", cluster.RoleData).SetSynced(true)
	c.StartPeer(t, "session-0", cluster.RoleSession)
	leader := c.WaitLeader(t)
	testcluster.Eventually(t, testcluster.DefaultWait, func() error { return fullTable(leader.Server().State()) })
	existing := leader.Server().State().Members["data-0"]

	// Send every bad request to a follower too: forwarding must keep the
	// leader's status intact.
	var follower *testcluster.MetaNode
	for _, n := range c.LiveMetas() {
		if n != leader {
			follower = n
		}
	}
	node := func(id string, role registryv1.Role, addr string) *registryv1.RegisterNodeRequest {
		return &registryv1.RegisterNodeRequest{Node: &registryv1.Node{Id: id, Role: role, GrpcAddress: addr}}
	}
	// Each call is made as the node it claims to be, so what is refused is
	// the input, not the identity (security_test.go has those).
	cases := []struct {
		name string
		as   identity.ID // default: data-0
		call func(registryv1.MetaServiceClient) error
		code codes.Code
		msg  string
	}{
		{"no node", identity.ID{}, func(cl registryv1.MetaServiceClient) error {
			_, err := cl.RegisterNode(ctxT(t), &registryv1.RegisterNodeRequest{})
			return err
		}, codes.InvalidArgument, "node is required"},
		{"empty id", identity.ID{}, func(cl registryv1.MetaServiceClient) error {
			_, err := cl.RegisterNode(ctxT(t), node("", registryv1.Role_ROLE_DATA, "127.0.0.1:1"))
			return err
		}, codes.InvalidArgument, "node id: identity: invalid: name is empty"},
		{"id with space", identity.ID{}, func(cl registryv1.MetaServiceClient) error {
			_, err := cl.RegisterNode(ctxT(t), node("a b", registryv1.Role_ROLE_DATA, "127.0.0.1:1"))
			return err
		}, codes.InvalidArgument, "space"},
		{"huge id", identity.ID{}, func(cl registryv1.MetaServiceClient) error {
			_, err := cl.RegisterNode(ctxT(t), node(strings.Repeat("x", 200), registryv1.Role_ROLE_DATA, "127.0.0.1:1"))
			return err
		}, codes.InvalidArgument, "at most 128"},
		{"unknown role", identity.ID{}, func(cl registryv1.MetaServiceClient) error {
			_, err := cl.RegisterNode(ctxT(t), node("x", registryv1.Role(42), "127.0.0.1:1"))
			return err
		}, codes.InvalidArgument, "unknown role"},
		{"unspecified role", identity.ID{}, func(cl registryv1.MetaServiceClient) error {
			_, err := cl.RegisterNode(ctxT(t), node("x", registryv1.Role_ROLE_UNSPECIFIED, "127.0.0.1:1"))
			return err
		}, codes.InvalidArgument, "unknown role"},
		{"meta role", identity.ID{}, func(cl registryv1.MetaServiceClient) error {
			_, err := cl.RegisterNode(ctxT(t), node("x", registryv1.Role_ROLE_META, "127.0.0.1:1"))
			return err
		}, codes.InvalidArgument, "meta nodes join through gossip"},
		{"bad address", identity.ID{}, func(cl registryv1.MetaServiceClient) error {
			_, err := cl.RegisterNode(ctxT(t), node("x", registryv1.Role_ROLE_DATA, "nowhere"))
			return err
		}, codes.InvalidArgument, "grpc address"},
		{"duplicate id, other role", identity.ID{Role: identity.RoleSession, Name: "data-0"}, func(cl registryv1.MetaServiceClient) error {
			_, err := cl.RegisterNode(ctxT(t), node("data-0", registryv1.Role_ROLE_SESSION, existing.GRPC))
			return err
		}, codes.InvalidArgument, "registered as data"},
		{"heartbeat from a stranger", identity.ID{Role: identity.RoleData, Name: "nobody"}, func(cl registryv1.MetaServiceClient) error {
			_, err := cl.Heartbeat(ctxT(t), &registryv1.HeartbeatRequest{NodeId: "nobody"})
			return err
		}, codes.NotFound, "not registered"},
		{"heartbeat for an unknown slot", identity.ID{}, func(cl registryv1.MetaServiceClient) error {
			_, err := cl.Heartbeat(ctxT(t), &registryv1.HeartbeatRequest{NodeId: "data-0", Slots: []*registryv1.SlotSync{{SlotId: 256, Synced: true}}})
			return err
		}, codes.InvalidArgument, "slot 256 out of range"},
		{"session reporting slots", identity.ID{Role: identity.RoleSession, Name: "session-0"}, func(cl registryv1.MetaServiceClient) error {
			_, err := cl.Heartbeat(ctxT(t), &registryv1.HeartbeatRequest{NodeId: "session-0", Slots: []*registryv1.SlotSync{{SlotId: 1, Synced: true}}})
			return err
		}, codes.InvalidArgument, "only data nodes hold slots"},
		{"heartbeat with a handover slot out of range", identity.ID{}, func(cl registryv1.MetaServiceClient) error {
			_, err := cl.Heartbeat(ctxT(t), &registryv1.HeartbeatRequest{NodeId: "data-0", HandoverSlots: []uint32{3, 256}})
			return err
		}, codes.InvalidArgument, "handover slot 256 out of range"},
		{"heartbeat with more handover slots than slots", identity.ID{}, func(cl registryv1.MetaServiceClient) error {
			_, err := cl.Heartbeat(ctxT(t), &registryv1.HeartbeatRequest{NodeId: "data-0", HandoverSlots: make([]uint32, 257)})
			return err
		}, codes.InvalidArgument, "257 handover slots reported, the cluster has 256 slots"},
		{"session reporting handover slots", identity.ID{Role: identity.RoleSession, Name: "session-0"}, func(cl registryv1.MetaServiceClient) error {
			_, err := cl.Heartbeat(ctxT(t), &registryv1.HeartbeatRequest{NodeId: "session-0", HandoverSlots: []uint32{1}})
			return err
		}, codes.InvalidArgument, "only data nodes lead slots"},
		{"oversized zone", identity.ID{}, func(cl registryv1.MetaServiceClient) error {
			_, err := cl.ListSessions(ctxT(t), &registryv1.ListSessionsRequest{Zone: strings.Repeat("z", 100)})
			return err
		}, codes.InvalidArgument, "zone"},
	}
	for _, target := range []*testcluster.MetaNode{leader, follower} {
		for _, tc := range cases {
			t.Run(target.ID+"/"+tc.name, func(t *testing.T) {
				as := tc.as
				if as.Role == "" {
					as = identity.ID{Role: identity.RoleData, Name: "data-0"}
				}
				conn := c.DialAs(t, target.Server().GRPCAddr(), as.Role, as.Name)
				defer conn.Close()
				before := leader.Server().State()
				err := tc.call(registryv1.NewMetaServiceClient(conn))
				st, _ := status.FromError(err)
				if st.Code() != tc.code || !strings.Contains(st.Message(), tc.msg) {
					t.Fatalf("got %v %q, want %v containing %q", st.Code(), st.Message(), tc.code, tc.msg)
				}
				after := leader.Server().State()
				if after.Index != before.Index {
					t.Fatalf("bad request changed the state: index %d -> %d", before.Index, after.Index)
				}
			})
		}
	}
}

func TestMeta_New_RejectsBadConfig(t *testing.T) {
	deps := meta.Deps{Deps: node.Deps{GRPCListener: testcluster.Listen(t), HTTPListener: testcluster.Listen(t)}, RaftListener: testcluster.Listen(t)}
	t.Cleanup(func() { _ = deps.GRPCListener.Close(); _ = deps.HTTPListener.Close(); _ = deps.RaftListener.Close() })
	base := meta.TestConfig()
	base.NodeID = "m"
	base.DataDir = filepath.Join(t.TempDir(), "m")
	for _, tc := range []struct {
		name string
		edit func(*meta.Config)
		msg  string
	}{
		{"absurd slot count", func(c *meta.Config) { c.Slots = 1 << 30 }, "slot count out of range"},
		{"zero slots", func(c *meta.Config) { c.Slots = 0 }, "slot count out of range"},
		{"negative replicas", func(c *meta.Config) { c.Replicas = -1 }, "replica count out of range"},
		{"no node id", func(c *meta.Config) { c.NodeID = "" }, "node id: identity: invalid: name is empty"},
		{"no data dir", func(c *meta.Config) { c.DataDir = "" }, "data dir"},
		{"bootstrap-expect", func(c *meta.Config) { c.BootstrapExpect = 100 }, "bootstrap-expect"},
		{"lease over heartbeat", func(c *meta.Config) { c.RaftLeaderLeaseTimeout = 10 * c.RaftHeartbeatTimeout }, "lease timeout"},
		{"half TLS", func(c *meta.Config) { c.TLS.CertFile = "cert.pem" }, "cert file and key file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.edit(&cfg)
			_, err := meta.New(cfg, deps)
			if !errors.Is(err, meta.ErrBadConfig) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want ErrBadConfig mentioning %q", err, tc.msg)
			}
		})
	}
	if _, err := meta.New(base, meta.Deps{}); !errors.Is(err, meta.ErrBadConfig) {
		t.Fatalf("missing listeners: got %v", err)
	}
}

func TestMeta_FollowerForwards_ListSessionsByLoad(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3})
	leader := c.WaitLeader(t)
	var follower *testcluster.MetaNode
	for _, n := range c.LiveMetas() {
		if n != leader {
			follower = n
		}
	}
	as := func(id string) registryv1.MetaServiceClient {
		conn := c.DialAs(t, follower.Server().GRPCAddr(), identity.RoleSession, id)
		t.Cleanup(func() { _ = conn.Close() })
		return registryv1.NewMetaServiceClient(conn)
	}
	client := metaClient(t, c, follower.Server().GRPCAddr())
	for i := range 2 {
		_, err := as(fmt.Sprintf("s-%d", i)).RegisterNode(ctxT(t), &registryv1.RegisterNodeRequest{Node: &registryv1.Node{
			Id: fmt.Sprintf("s-%d", i), Role: registryv1.Role_ROLE_SESSION, GrpcAddress: fmt.Sprintf("127.0.0.1:%d", 1000+i), Zone: "z1",
		}})
		if err != nil {
			t.Fatalf("register through follower: %v", err)
		}
	}
	// Registering the same node again is a no-op, not an error.
	if _, err := as("s-0").RegisterNode(ctxT(t), &registryv1.RegisterNodeRequest{Node: &registryv1.Node{
		Id: "s-0", Role: registryv1.Role_ROLE_SESSION, GrpcAddress: "127.0.0.1:1000", Zone: "z1",
	}}); err != nil {
		t.Fatalf("re-register: %v", err)
	}
	for i, n := range []uint32{50, 7} {
		if _, err := as(fmt.Sprintf("s-%d", i)).Heartbeat(ctxT(t), &registryv1.HeartbeatRequest{NodeId: fmt.Sprintf("s-%d", i), ClientCount: n}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := client.ListSessions(ctxT(t), &registryv1.ListSessionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetSessions()) != 2 || resp.GetSessions()[0].GetNode().GetId() != "s-1" || resp.GetSessions()[0].GetClientCount() != 7 {
		t.Fatalf("want s-1 (7 clients) first, got %v", resp.GetSessions())
	}
	info, err := client.GetClusterInfo(ctxT(t), &registryv1.GetClusterInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetSlotCount() != 256 || len(info.GetMeta()) != 3 || info.GetClusterId() == "" {
		t.Fatalf("cluster info: %v", info)
	}
}

func TestMeta_JoiningMetaBecomesVoter_LeavingOneIsRemoved(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, MetaConfig: func(i int, cfg *meta.Config) {
		cfg.LeaveOnShutdown = i == 3 // the node added later leaves gracefully
	}})
	n := c.AddMeta(t)
	voters := func() (map[string]bool, error) {
		info, err := metaClient(t, c, c.WaitLeader(t).Server().GRPCAddr()).GetClusterInfo(ctxT(t), &registryv1.GetClusterInfoRequest{})
		if err != nil {
			return nil, err
		}
		out := map[string]bool{}
		for _, p := range info.GetMeta() {
			if p.GetVoter() {
				out[p.GetId()] = true
			}
		}
		return out, nil
	}
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		v, err := voters()
		if err != nil {
			return err
		}
		if !v[n.ID] || len(v) != 4 {
			return fmt.Errorf("voters %v, want 4 including %s", v, n.ID)
		}
		if !n.Server().State().Initialized() {
			return errors.New("new meta node has not caught up")
		}
		return nil
	})
	// A graceful stop with leave-on-shutdown removes it from the voters.
	c.StopGraceful(t, n.Index)
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		v, err := voters()
		if err != nil {
			return err
		}
		if v[n.ID] || len(v) != 3 {
			return fmt.Errorf("voters %v, want the 3 original", v)
		}
		return nil
	})
}

// TestMeta_Register_AProvenNodeMoves_AnUnprovenMoveIsRefused: a node whose
// certificate names it may register again at a new address (it is that
// node, restarted elsewhere); without TLS, where nothing is proven, the
// same id at another address is refused unless the pool shows the node
// alive there, and the member keeps its address.
func TestMeta_Register_AProvenNodeMoves_AnUnprovenMoveIsRefused(t *testing.T) {
	for _, insecure := range []bool{false, true} {
		t.Run(fmt.Sprintf("insecure=%v", insecure), func(t *testing.T) {
			c := testcluster.Start(t, testcluster.Spec{Meta: 1, Insecure: insecure})
			leader := c.WaitLeader(t)
			conn := c.DialAs(t, leader.Server().GRPCAddr(), identity.RoleSession, "s-move")
			t.Cleanup(func() { _ = conn.Close() })
			cl := registryv1.NewMetaServiceClient(conn)
			register := func(addr string) error {
				_, err := cl.RegisterNode(ctxT(t), &registryv1.RegisterNodeRequest{Node: &registryv1.Node{Id: "s-move", Role: registryv1.Role_ROLE_SESSION, GrpcAddress: addr}})
				return err
			}
			if err := register("127.0.0.1:1"); err != nil {
				t.Fatal(err)
			}
			err := register("127.0.0.1:2")
			want := "127.0.0.1:2"
			if insecure {
				want = "127.0.0.1:1"
				if status.Code(err) != codes.AlreadyExists {
					t.Fatalf("unproven move: %v, want AlreadyExists", err)
				}
			} else if err != nil {
				t.Fatalf("proven move: %v", err)
			}
			if got := leader.Server().State().Members["s-move"].GRPC; got != want {
				t.Fatalf("member at %s, want %s", got, want)
			}
		})
	}
}
