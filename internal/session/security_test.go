package session_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// refusedWith checks that an ack refused the request with code.
func refusedWith(t *testing.T, a *registryv1.Ack, err error, code codes.Code) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if codes.Code(a.GetCode()) != code {
		t.Fatalf("ack %d: code %v %q, want %v", a.GetId(), codes.Code(a.GetCode()), a.GetMessage(), code)
	}
}

// waitValues waits for a push of key to cl whose values are want (in any
// order), skipping others.
func waitValues(t *testing.T, cl *testcluster.Client, key string, want ...string) *registryv1.Push {
	t.Helper()
	slices.Sort(want)
	for {
		p := nextPush(t, cl, key)
		got := values(p)
		slices.Sort(got)
		if slices.Equal(got, want) {
			return p
		}
	}
}

func everything(name string) access.Entry {
	return access.Entry{Name: name, Role: identity.RoleClient, Publish: []string{access.Any}, Subscribe: []string{access.Any}}
}

// TestSession_ClientsAreIsolated_ByIdentity: client B (another identity)
// registering A's register ID makes a publication of its own, and cannot
// replace or remove A's, on A's session or on another; a hello with A's
// client id is another client and does not kick A; within one identity, a
// second client cannot take over the first's register ID. A's later
// updates keep landing.
func TestSession_ClientsAreIsolated_ByIdentity(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 2, Session: 2})
	c.WaitDataSettled(t)
	c.SetIdentities(t, everything("alice"), everything("bob"))
	alice := c.ConnectAs(t, c.Session(0), "alice", "app-1", "z1", true)
	sub := c.Connect(t, c.Session(1), "watcher", "z1", true)
	a, err := sub.Subscribe(svc, "w", registryv1.Scope_SCOPE_GLOBAL)
	ok(t, a, err)
	waitValues(t, sub, key)
	a, err = alice.Publish(svc, "r1", 1, "alice-v1")
	ok(t, a, err)
	waitValues(t, sub, key, "alice-v1")

	// Bob, on either session, with alice's register ID and a higher version.
	for i, n := range []*testcluster.SessionNode{c.Session(0), c.Session(1)} {
		bob := c.ConnectAs(t, n, "bob", fmt.Sprintf("bob-%d", i), "z1", true)
		a, err = bob.Publish(svc, "r1", 99, fmt.Sprintf("bob-%d", i))
		ok(t, a, err)
		p := waitValues(t, sub, key, "alice-v1", fmt.Sprintf("bob-%d", i))
		for _, v := range p.GetValues() {
			if v.GetPublisherId() != "r1" {
				t.Fatalf("pushed publisher id %q, want the client's own r1", v.GetPublisherId())
			}
		}
		a, err = bob.Unpublish(svc, "r1", 100)
		ok(t, a, err)
		waitValues(t, sub, key, "alice-v1")
		bob.Close()
	}

	// A hello with alice's client id from bob's identity kicks nobody.
	impostor := c.ConnectAs(t, c.Session(0), "bob", "app-1", "z1", true)
	a, err = impostor.Unpublish(svc, "r1", 100)
	ok(t, a, err)
	a, err = alice.Publish(svc, "r1", 2, "alice-v2")
	ok(t, a, err)
	waitValues(t, sub, key, "alice-v2")

	// Another client of alice's own identity cannot take the register ID
	// over on this session.
	twin := c.ConnectAs(t, c.Session(0), "alice", "app-2", "z1", true)
	a, err = twin.Publish(svc, "r1", 50, "twin")
	refusedWith(t, a, err, codes.PermissionDenied)
	a, err = twin.Unpublish(svc, "r1", 51)
	ok(t, a, err) // not its publication: nothing to remove
	a, err = alice.Publish(svc, "r1", 3, "alice-v3")
	ok(t, a, err)
	waitValues(t, sub, key, "alice-v3")
}

// TestSession_PrefixRights_TokenForAPublishesAX_RefusedBX: a token whose
// entry allows the prefix a. publishes and subscribes under a.x and is
// refused both under b.x (PermissionDenied), which changes nothing; a
// reloaded tokens file that drops the right refuses the next request on
// the same stream.
func TestSession_PrefixRights_TokenForAPublishesAX_RefusedBX(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1})
	c.WaitDataSettled(t)
	const tok = "token-of-the-a-team-0123456789"
	entry := access.Entry{Name: "a-team", Role: identity.RoleClient, TokenSHA256: access.HashToken(tok), Publish: []string{"a."}, Subscribe: []string{"a."}}
	c.SetIdentities(t, entry)
	cl := c.ConnectToken(t, c.Session(0), tok, "a-1", "", true)
	a, err := cl.Publish("a.x", "r1", 1, "v")
	ok(t, a, err)
	a, err = cl.Subscribe("a.x", "s1", registryv1.Scope_SCOPE_GLOBAL)
	ok(t, a, err)
	a, err = cl.Publish("b.x", "r2", 1, "v")
	refusedWith(t, a, err, codes.PermissionDenied)
	if !strings.Contains(a.GetMessage(), `may not publish under data ID "b.x"`) {
		t.Errorf("refusal says %q", a.GetMessage())
	}
	a, err = cl.Subscribe("b.x", "s2", registryv1.Scope_SCOPE_GLOBAL)
	refusedWith(t, a, err, codes.PermissionDenied)
	if n := c.Session(0).Server().Publishers(); n != 1 {
		t.Errorf("the session holds %d publishers, want only a.x's", n)
	}
	// Narrow the rights: subscribing stays, publishing goes.
	entry.Publish = nil
	c.SetIdentities(t, entry)
	a, err = cl.Publish("a.y", "r3", 1, "v")
	refusedWith(t, a, err, codes.PermissionDenied)
	// An unknown token is refused before the stream opens.
	if err := c.TryConnectToken(t, c.Session(0), "not-a-token"); err == nil || !strings.Contains(err.Error(), "Unauthenticated") {
		t.Errorf("unknown token: %v", err)
	}
}

// TestSession_IdentityQuota_RefusesTheFlood_OthersUnaffected: an identity
// past its registration quota (over two connections) is refused with
// ResourceExhausted, and another identity on the same session registers
// and is pushed as before.
func TestSession_IdentityQuota_RefusesTheFlood_OthersUnaffected(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1})
	c.WaitDataSettled(t)
	flood := everything("flood")
	flood.MaxRegistrations = 10
	c.SetIdentities(t, flood, everything("calm"))
	f1 := c.ConnectAs(t, c.Session(0), "flood", "f-1", "", true)
	f2 := c.ConnectAs(t, c.Session(0), "flood", "f-2", "", true)
	accepted := 0
	var last *registryv1.Ack
	for i := range 30 {
		cl := []*testcluster.Client{f1, f2}[i%2]
		a, err := cl.Publish(fmt.Sprintf("flood.%d", i), "r", 1, "v")
		if err != nil {
			t.Fatal(err)
		}
		if a.GetCode() == 0 {
			accepted++
		} else {
			last = a
		}
	}
	if accepted != 10 || codes.Code(last.GetCode()) != codes.ResourceExhausted || !strings.Contains(last.GetMessage(), "at most 10 allowed") {
		t.Fatalf("accepted %d of 30 (want 10); last refusal %v", accepted, last)
	}
	// At the quota, updating a publication it holds is no new
	// registration: accepted. A new subscription is refused like a new
	// publication.
	a, err := f1.Publish("flood.0", "r", 2, "v2")
	ok(t, a, err)
	a, err = f1.Subscribe(svc, "s", registryv1.Scope_SCOPE_GLOBAL)
	refusedWith(t, a, err, codes.ResourceExhausted)
	calm := c.ConnectAs(t, c.Session(0), "calm", "c-1", "", true)
	a, err = calm.Subscribe(svc, "s", registryv1.Scope_SCOPE_GLOBAL)
	ok(t, a, err)
	waitValues(t, calm, key)
	a, err = calm.Publish(svc, "r", 1, "calm")
	ok(t, a, err)
	waitValues(t, calm, key, "calm")
}

// TestSession_InvalidUTF8_RefusesTheFrame_NotTheStream: a frame with
// invalid UTF-8 in a string field gets an InvalidArgument ack under its own
// id; the stream stays open and the next frame is served.
func TestSession_InvalidUTF8_RefusesTheFrame_NotTheStream(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1})
	c.WaitDataSettled(t)
	n := c.Session(0)
	conn := c.DialAs(t, n.Server().GRPCAddr(), identity.RoleClient, testcluster.ClientName)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testcluster.DefaultWait)
	defer cancel()
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true},
		registryv1.SessionService_Connect_FullMethodName, grpc.ForceCodecV2(testcluster.RawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	send := func(f *registryv1.ClientFrame) {
		b, err := proto.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.SendMsg(&b); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() *registryv1.ServerFrame {
		var b []byte
		if err := stream.RecvMsg(&b); err != nil {
			t.Fatal(err)
		}
		f := &registryv1.ServerFrame{}
		if err := proto.Unmarshal(b, f); err != nil {
			t.Fatal(err)
		}
		return f
	}
	send(&registryv1.ClientFrame{Body: &registryv1.ClientFrame_Hello{Hello: &registryv1.Hello{ClientId: "utf8"}}})
	if recv().GetWelcome() == nil {
		t.Fatal("no welcome")
	}
	// ClientFrame{id: 7, register_publisher: {register_id: "\xff", data_id: "x"}}, by hand.
	var pub []byte
	pub = protowire.AppendTag(pub, 1, protowire.BytesType)
	pub = protowire.AppendString(pub, "\xff")
	pub = protowire.AppendTag(pub, 2, protowire.BytesType)
	pub = protowire.AppendString(pub, "x")
	var bad []byte
	bad = protowire.AppendTag(bad, 1, protowire.VarintType)
	bad = protowire.AppendVarint(bad, 7)
	bad = protowire.AppendTag(bad, 3, protowire.BytesType)
	bad = protowire.AppendBytes(bad, pub)
	if err := stream.SendMsg(&bad); err != nil {
		t.Fatal(err)
	}
	send(&registryv1.ClientFrame{Id: 8, Body: &registryv1.ClientFrame_Heartbeat{Heartbeat: &registryv1.Heartbeat{}}})
	acks := map[uint64]*registryv1.Ack{}
	for len(acks) < 2 {
		if a := recv().GetAck(); a != nil {
			acks[a.GetId()] = a
		}
	}
	if a := acks[7]; codes.Code(a.GetCode()) != codes.InvalidArgument || !strings.Contains(a.GetMessage(), "UTF-8") {
		t.Errorf("ack of the bad frame: %v, want InvalidArgument naming UTF-8", a)
	}
	if a := acks[8]; a.GetCode() != 0 {
		t.Errorf("the frame after it: %v, want served", a)
	}
	if n.Server().Publishers() != 0 {
		t.Error("the bad frame registered something")
	}
}
