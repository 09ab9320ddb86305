package session

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/strata-registry/strata/internal/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// FuzzClientFrame feeds arbitrary bytes to what a client's frame meets on a
// session: protobuf decoding, then the frame's own checks. Nothing may
// panic; a publisher the checks accept must be one data nodes accept, its
// register ID qualified by its owner and given back to clients unchanged;
// a subscriber accepted names a well-formed key.
func FuzzClientFrame(f *testing.F) {
	for _, fr := range []*registryv1.ClientFrame{
		{Id: 1, Body: &registryv1.ClientFrame_Hello{Hello: &registryv1.Hello{ClientId: "c1", Zone: "z1"}}},
		{Id: 2, Body: &registryv1.ClientFrame_RegisterPublisher{RegisterPublisher: &registryv1.RegisterPublisher{RegisterId: "r1", DataId: "com.example.a", Version: 3, Values: [][]byte{[]byte("10.0.0.1:80")}}}},
		{Id: 3, Body: &registryv1.ClientFrame_RegisterSubscriber{RegisterSubscriber: &registryv1.RegisterSubscriber{RegisterId: "s1", DataId: "com.example.a", Group: "G", Scope: registryv1.Scope_SCOPE_ZONE}}},
		{Id: 4, Body: &registryv1.ClientFrame_UnregisterPublisher{UnregisterPublisher: &registryv1.UnregisterPublisher{RegisterId: "r1", DataId: "x"}}},
		{Id: 5, Body: &registryv1.ClientFrame_PushAcks{PushAcks: &registryv1.PushAcks{Acks: []*registryv1.PushAck{{RegisterId: "s1", Version: 9, AlsoRegisterIds: []string{"s2"}}}}}},
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
		if strings.ContainsRune(owner, '/') || len(owner) > record.MaxOwnerBytes {
			return // identity names hold no '/' (identity.ValidName)
		}
		fr := &registryv1.ClientFrame{}
		if proto.Unmarshal(b, fr) != nil {
			return
		}
		switch body := fr.GetBody().(type) {
		case *registryv1.ClientFrame_Hello:
			_ = checkHello(body.Hello)
		case *registryv1.ClientFrame_RegisterPublisher:
			p, err := publisherOf(body.RegisterPublisher, owner, "z1", "session-1@1", "conn-1", now)
			if err != nil {
				return
			}
			if err := record.ValidatePublisher(p); err != nil {
				t.Fatalf("accepted a publisher data nodes refuse: %v", err)
			}
			if got := record.ClientRegisterID(p.GetRegisterId(), owner != ""); got != body.RegisterPublisher.GetRegisterId() {
				t.Fatalf("register id %q comes back to clients as %q", body.RegisterPublisher.GetRegisterId(), got)
			}
		case *registryv1.ClientFrame_RegisterSubscriber:
			key, _, err := subscriberOf(body.RegisterSubscriber)
			if err != nil {
				return
			}
			if _, _, _, err := record.ParseDataInfoID(key); err != nil {
				t.Fatalf("accepted a subscriber of a malformed key %q: %v", key, err)
			}
		}
	})
}
