package meta_test

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/meta"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Operators mark instances through any meta node (followers forward);
// every meta node streams the whole set on each change; nobody but an
// operator may mark, and bad marks are refused with the reason, changing
// nothing.
func TestMeta_InstanceStates_SetByOperatorsOnly_WatchedWhole(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3})
	leader := c.WaitLeader(t)
	var follower *testcluster.MetaNode
	for _, n := range c.LiveMetas() {
		if n != leader {
			follower = n
		}
	}
	as := func(role identity.Role, name string) registryv1.MetaServiceClient {
		conn := c.DialAs(t, follower.Server().GRPCAddr(), role, name)
		t.Cleanup(func() { _ = conn.Close() })
		return registryv1.NewMetaServiceClient(conn)
	}
	op := as(identity.RoleAdmin, testcluster.AdminName)
	watch, err := as(identity.RoleData, "data-0").WatchInstanceStates(ctxT(t), &registryv1.WatchInstanceStatesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := watch.Recv()
	if err != nil || len(first.GetEntries()) != 0 {
		t.Fatalf("first message %v, %v; want an empty set", first, err)
	}

	key := record.DataInfoID("com.example.echo", "", "")
	set := func(cl registryv1.MetaServiceClient, addr, state, reason string) error {
		_, err := cl.SetInstanceState(ctxT(t), &registryv1.SetInstanceStateRequest{DataInfoId: key, Addr: addr, State: state, Reason: reason})
		return err
	}
	if err := set(op, "10.0.0.7:8080", meta.StateDraining, "kernel upgrade"); err != nil {
		t.Fatal(err)
	}
	got, err := watch.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if e := got.GetEntries(); len(e) != 1 || e[0].GetAddr() != "10.0.0.7:8080" || e[0].GetState() != meta.StateDraining ||
		e[0].GetReason() != "kernel upgrade" || !strings.Contains(e[0].GetSetBy(), "admin/"+testcluster.AdminName) || got.GetIndex() == 0 {
		t.Fatalf("after drain: %v; want the mark, set by the operator (not the forwarding follower)", got)
	}
	if err := set(op, "10.0.0.8:8080", meta.StateDisabled, ""); err != nil {
		t.Fatal(err)
	}
	if got, err = watch.Recv(); err != nil || len(got.GetEntries()) != 2 || got.GetEntries()[1].GetState() != meta.StateDisabled {
		t.Fatalf("after disable: %v, %v; want both marks, sorted by address", got, err)
	}
	before := leader.Server().State()

	for _, tc := range []struct {
		name  string
		cl    registryv1.MetaServiceClient
		req   *registryv1.SetInstanceStateRequest
		code  codes.Code
		words string
	}{
		{"a client", as(identity.RoleClient, testcluster.ClientName), &registryv1.SetInstanceStateRequest{DataInfoId: key, Addr: "10.0.0.9:1", State: "draining"}, codes.PermissionDenied, ""},
		{"a data node", as(identity.RoleData, "data-0"), &registryv1.SetInstanceStateRequest{DataInfoId: key, Addr: "10.0.0.9:1", State: "draining"}, codes.PermissionDenied, ""},
		{"a session", as(identity.RoleSession, "session-0"), &registryv1.SetInstanceStateRequest{DataInfoId: key, Addr: "10.0.0.9:1", State: "draining"}, codes.PermissionDenied, ""},
		{"a bad key", op, &registryv1.SetInstanceStateRequest{DataInfoId: "a#@#b", Addr: "10.0.0.9:1", State: "draining"}, codes.InvalidArgument, "data_info_id"},
		{"no addr", op, &registryv1.SetInstanceStateRequest{DataInfoId: key, State: "draining"}, codes.InvalidArgument, "addr must be"},
		{"addr without port", op, &registryv1.SetInstanceStateRequest{DataInfoId: key, Addr: "10.0.0.9", State: "draining"}, codes.InvalidArgument, "not host:port"},
		{"huge addr", op, &registryv1.SetInstanceStateRequest{DataInfoId: key, Addr: strings.Repeat("h", 300) + ":1", State: "draining"}, codes.InvalidArgument, "addr must be"},
		{"unknown state", op, &registryv1.SetInstanceStateRequest{DataInfoId: key, Addr: "10.0.0.9:1", State: "sleeping"}, codes.InvalidArgument, `state "sleeping"`},
		{"huge reason", op, &registryv1.SetInstanceStateRequest{DataInfoId: key, Addr: "10.0.0.9:1", State: "draining", Reason: strings.Repeat("r", 300)}, codes.InvalidArgument, "reason"},
	} {
		_, err := tc.cl.SetInstanceState(ctxT(t), tc.req)
		if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.words) {
			t.Errorf("%s: %v; want %v saying %q", tc.name, err, tc.code, tc.words)
		}
	}
	if after := leader.Server().State(); after.Index != before.Index {
		t.Fatalf("refused marks changed the state: index %d -> %d", before.Index, after.Index)
	}

	// Clearing takes a mark out; clearing one that is not there is a no-op.
	if err := set(op, "10.0.0.7:8080", "", ""); err != nil {
		t.Fatal(err)
	}
	if got, err = watch.Recv(); err != nil || len(got.GetEntries()) != 1 || got.GetEntries()[0].GetAddr() != "10.0.0.8:8080" {
		t.Fatalf("after undrain: %v, %v; want only the disabled mark", got, err)
	}
	if err := set(op, "10.0.0.99:1", "", ""); err != nil {
		t.Fatalf("clearing an absent mark: %v", err)
	}
	// The marks outlast a leader change: they are replicated state.
	c.Stop(t, leader.Index)
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		if m := c.WaitLeader(t).Server().State().Marks[key]; len(m) != 1 || m["10.0.0.8:8080"].State != meta.StateDisabled {
			return fmt.Errorf("new leader's marks %v", m)
		}
		return nil
	})
}
