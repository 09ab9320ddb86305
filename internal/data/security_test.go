package data_test

import (
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// TestData_NodeRPCs_OnlyForTheCallersOwnIdentity: only sessions write,
// read and watch, each under its own session id; only data nodes
// replicate, each as itself; a client or an operator never acts as a
// node. A refused call changes nothing.
func TestData_NodeRPCs_OnlyForTheCallersOwnIdentity(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 2})
	c.WaitDataSettled(t)
	victim := c.StartSession(t, "session-a")
	const k = "com.example.victim#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP"
	victim.Publish(t, pub("", k, "r1", 1, "10.0.0.1:80"))
	before := read(t, c, k)
	r := c.RouteOf(t, k)
	leaderAddr := r.Leader.Server().GRPCAddr()
	as := func(role identity.Role, name string) registryv1.DataServiceClient {
		conn := c.DialAs(t, leaderAddr, role, name)
		t.Cleanup(func() { _ = conn.Close() })
		return registryv1.NewDataServiceClient(conn)
	}
	forged := pub(victim.Proc, k, "r1", 99, "10.6.6.6:80")
	forged.RegisterTimestamp = time.Now().Add(time.Hour).UnixNano()
	publish := func(cl registryv1.DataServiceClient) error {
		_, err := cl.Publish(ctxT(t), &registryv1.PublishRequest{SessionId: victim.Proc, TableEpoch: r.TableEpoch, SlotId: r.Slot,
			LeaderEpoch: r.LeaderEpoch, Puts: []*registryv1.Publisher{forged}})
		return err
	}
	tombstone := func(cl registryv1.DataServiceClient) error {
		_, err := cl.Publish(ctxT(t), &registryv1.PublishRequest{SessionId: victim.Proc, TableEpoch: r.TableEpoch, SlotId: r.Slot,
			LeaderEpoch: r.LeaderEpoch, Deletes: []*registryv1.Unpublish{{DataInfoId: k, RegisterId: "r1", ClientVersion: 1 << 60, RegisterTimestamp: 1 << 62}}})
		return err
	}
	publishSlots := func(cl registryv1.DataServiceClient) error {
		_, err := cl.PublishSlots(ctxT(t), &registryv1.PublishSlotsRequest{Batches: []*registryv1.PublishRequest{{SessionId: victim.Proc,
			TableEpoch: r.TableEpoch, SlotId: r.Slot, LeaderEpoch: r.LeaderEpoch, Puts: []*registryv1.Publisher{forged}}}})
		return err
	}
	watch := func(cl registryv1.DataServiceClient) error {
		s, err := cl.WatchChanges(ctxT(t), &registryv1.WatchChangesRequest{SessionId: victim.Proc})
		if err == nil {
			_, err = s.Recv()
		}
		return err
	}
	replicate := func(follower string) func(cl registryv1.DataServiceClient) error {
		return func(cl registryv1.DataServiceClient) error {
			s, err := cl.Replicate(ctxT(t), &registryv1.ReplicateRequest{SlotId: r.Slot, LeaderEpoch: r.LeaderEpoch, FollowerId: follower})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}
	}
	getDatums := func(cl registryv1.DataServiceClient) error {
		_, err := cl.GetDatums(ctxT(t), &registryv1.GetDatumsRequest{DataInfoIds: []string{k}})
		return err
	}
	other := r.Followers[0].ID
	for _, tc := range []struct {
		name string
		cl   registryv1.DataServiceClient
		call func(registryv1.DataServiceClient) error
	}{
		{"another session publishes under the victim's session id", as(identity.RoleSession, "session-b"), publish},
		{"another session writes a far-future tombstone for the victim", as(identity.RoleSession, "session-b"), tombstone},
		{"another session publishes slots' batches under the victim's session id", as(identity.RoleSession, "session-b"), publishSlots},
		{"a client publishes slots' batches", as(identity.RoleClient, testcluster.ClientName), publishSlots},
		{"a data node publishes", as(identity.RoleData, other), publish},
		{"a client publishes", as(identity.RoleClient, testcluster.ClientName), publish},
		{"an operator publishes", as(identity.RoleAdmin, testcluster.AdminName), publish},
		{"another session watches (and holds the lease of) the victim's session", as(identity.RoleSession, "session-b"), watch},
		{"a client watches", as(identity.RoleClient, testcluster.ClientName), watch},
		{"a data node replicates as another follower", as(identity.RoleData, "data-9"), replicate(other)},
		{"a session replicates", as(identity.RoleSession, "session-b"), replicate("session-b")},
		{"a client reads records", as(identity.RoleClient, testcluster.ClientName), getDatums},
		{"another session reads as the victim (claiming its interest)", as(identity.RoleSession, "session-b"), func(cl registryv1.DataServiceClient) error {
			_, err := cl.GetDatums(ctxT(t), &registryv1.GetDatumsRequest{DataInfoIds: []string{k}, SessionId: victim.Proc})
			return err
		}},
		{"a client lists keys", as(identity.RoleClient, testcluster.ClientName), func(cl registryv1.DataServiceClient) error {
			_, err := cl.ListDataInfoIds(ctxT(t), &registryv1.ListDataInfoIdsRequest{SlotIds: []uint32{r.Slot}, Limit: 10})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(tc.cl); status.Code(err) != codes.PermissionDenied {
				t.Fatalf("got %v, want PermissionDenied", err)
			}
		})
	}
	if after := read(t, c, k); after.GetVersion() != before.GetVersion() || string(after.GetPublishers()[0].GetValues()[0]) != "10.0.0.1:80" {
		t.Fatalf("refused calls changed the datum: %v -> %v", before, after)
	}
	// The victim itself, and an operator reading, are served.
	if err := getDatums(as(identity.RoleAdmin, testcluster.AdminName)); err != nil {
		t.Errorf("operator read: %v", err)
	}
	if err := replicate(other)(as(identity.RoleData, other)); err != nil {
		t.Errorf("the follower replicating as itself: %v", err)
	}

	// Without a certificate nothing gets past the handshake: data nodes
	// serve no token holders.
	for name, creds := range map[string]credentials.TransportCredentials{
		"plaintext": insecure.NewCredentials(),
		"TLS without a certificate": func() credentials.TransportCredentials {
			tc := c.ClientTLS(t).Clone()
			tc.Certificates = nil
			return credentials.NewTLS(tc)
		}(),
	} {
		conn, err := grpc.NewClient(leaderAddr, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		err = getDatums(registryv1.NewDataServiceClient(conn))
		_ = conn.Close()
		if status.Code(err) != codes.Unavailable {
			t.Errorf("%s: %v, want the connection refused (Unavailable)", name, err)
		}
	}
}
