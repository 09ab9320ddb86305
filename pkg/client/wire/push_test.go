package wire_test

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/strata-registry/strata/pkg/client/wire"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// TestPush_OneAckForEverySubscriber: a push for several subscriptions
// names each once, first register_id, and one ack acks it for all of them
// at its version.
func TestPush_OneAckForEverySubscriber(t *testing.T) {
	p := &registryv1.Push{RegisterId: "a", AlsoRegisterIds: []string{"b", "c"}, Version: 7}
	if got := slices.Collect(wire.RegisterIDs(p)); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("RegisterIDs = %v", got)
	}
	for id := range wire.RegisterIDs(p) {
		if id == "b" {
			break // stopping early must not panic
		}
	}
	want := &registryv1.PushAck{RegisterId: "a", AlsoRegisterIds: []string{"b", "c"}, Version: 7}
	if got := wire.AckAll(p); !proto.Equal(got, want) {
		t.Fatalf("AckAll = %v, want %v", got, want)
	}
	if got := slices.Collect(wire.RegisterIDs(&registryv1.Push{RegisterId: "a"})); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("RegisterIDs of a single-subscriber push = %v", got)
	}
}
