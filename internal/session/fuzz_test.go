package session

import (
	"cmp"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/strata-registry/strata/internal/publisher"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// FuzzClientFrame feeds arbitrary bytes to what a client's frame meets on a
// session: protobuf decoding, then the frame's own checks. Nothing may
// panic; a refusal is a clear status (InvalidArgument, or
// ResourceExhausted for what is too long); an accepted hello and an
// accepted subscriber carry ids that validID (written apart, from the
// rule) accepts and a zone within its limit; a publisher the checks accept
// is one data nodes accept, its register ID qualified by its owner and
// given back to clients unchanged; a subscriber's key splits back into the
// parts it asked for.
func FuzzClientFrame(f *testing.F) {
	for _, fr := range []*registryv1.ClientFrame{
		{Id: 1, Body: &registryv1.ClientFrame_Hello{Hello: &registryv1.Hello{ClientId: "c1", Zone: "z1"}}},
		{Id: 2, Body: &registryv1.ClientFrame_RegisterPublisher{RegisterPublisher: &registryv1.RegisterPublisher{RegisterId: "r1", DataId: "com.example.a", Version: 3, Values: [][]byte{[]byte("10.0.0.1:80")}}}},
		{Id: 3, Body: &registryv1.ClientFrame_RegisterSubscriber{RegisterSubscriber: &registryv1.RegisterSubscriber{RegisterId: "s1", DataId: "com.example.a", Group: "G", Scope: registryv1.Scope_SCOPE_ZONE}}},
		{Id: 4, Body: &registryv1.ClientFrame_UnregisterPublisher{UnregisterPublisher: &registryv1.UnregisterPublisher{RegisterId: "r1", DataId: "x"}}},
		{Id: 5, Body: &registryv1.ClientFrame_PushAcks{PushAcks: &registryv1.PushAcks{Acks: []*registryv1.PushAck{{RegisterId: "s1", Version: 9, AlsoRegisterIds: []string{"s2"}}}}}},
		{Id: 6, Body: &registryv1.ClientFrame_Hello{Hello: &registryv1.Hello{ClientId: "has space"}}},
		{Id: 7, Body: &registryv1.ClientFrame_RegisterSubscriber{RegisterSubscriber: &registryv1.RegisterSubscriber{RegisterId: "s\u00a0", DataId: "a#@#b"}}},
	} {
		b, err := proto.Marshal(fr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "owner")
	}
	f.Add([]byte{0x1a, 0x03, 0x0a, 0x01, 0xff}, "") // a register id that is not UTF-8
	now := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, b []byte, owner string) {
		if owner != "" && (identity.ValidName(owner) != nil || len(owner) > publisher.MaxOwnerBytes) {
			return // the session's owners are identities' names ("" without TLS)
		}
		fr := &registryv1.ClientFrame{}
		if proto.Unmarshal(b, fr) != nil {
			return
		}
		refusal := func(what string, err error) {
			t.Helper()
			if c := status.Code(err); c != codes.InvalidArgument && c != codes.ResourceExhausted {
				t.Fatalf("%s refused with %v (%v), want InvalidArgument or ResourceExhausted", what, c, err)
			}
		}
		switch body := fr.GetBody().(type) {
		case *registryv1.ClientFrame_Hello:
			h := body.Hello
			if err := checkHello(h); err != nil {
				refusal("hello", err)
				return
			}
			if !validID(h.GetClientId()) || len(h.GetZone()) > record.MaxZoneBytes {
				t.Fatalf("accepted a hello with client id %q, zone of %d bytes", h.GetClientId(), len(h.GetZone()))
			}
		case *registryv1.ClientFrame_RegisterPublisher:
			rp := body.RegisterPublisher
			p, err := publisherOf(rp, owner, "z1", "session-1@1", "conn-1", now)
			if err != nil {
				refusal("publisher", err)
				return
			}
			if !validID(rp.GetRegisterId()) {
				t.Fatalf("accepted a publisher with register id %q", rp.GetRegisterId())
			}
			if err := publisher.Validate(p); err != nil {
				t.Fatalf("accepted a publisher data nodes refuse: %v", err)
			}
			if got := publisher.ClientRegisterID(p.GetRegisterId(), owner != ""); got != rp.GetRegisterId() {
				t.Fatalf("register id %q comes back to clients as %q", rp.GetRegisterId(), got)
			}
		case *registryv1.ClientFrame_RegisterSubscriber:
			rs := body.RegisterSubscriber
			key, _, err := subscriberOf(rs)
			if err != nil {
				refusal("subscriber", err)
				return
			}
			if !validID(rs.GetRegisterId()) {
				t.Fatalf("accepted a subscriber with register id %q", rs.GetRegisterId())
			}
			d, i, g, err := record.ParseDataInfoID(key)
			want := [3]string{rs.GetDataId(), cmp.Or(rs.GetInstanceId(), record.DefaultInstanceID), cmp.Or(rs.GetGroup(), record.DefaultGroup)}
			if err != nil || [3]string{d, i, g} != want {
				t.Fatalf("accepted a subscriber of %q, %q, %q as key %q (%v)", want[0], want[1], want[2], key, err)
			}
		}
	})
}

// validID is the rule for the ids a client makes up (client ids, register
// ids), written apart from record's: 1 to 128 bytes of UTF-8, every rune
// printable and none a space.
func validID(id string) bool {
	if id == "" || len(id) > 128 || !utf8.ValidString(id) {
		return false
	}
	for _, r := range id {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}
