package node

import (
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// FuzzLenientCodec feeds arbitrary bytes to every node's server codec as a
// client frame and as a unary request: it never fails (a stream must not
// end on a bad message); what the protobuf library decodes comes back as
// decoded and unmarked, and what it refuses comes back marked, with the
// frame's id when field 1 held one. A message that carries the codec's own
// mark field is refused too (the sender must not choose the mark).
func FuzzLenientCodec(f *testing.F) {
	good, _ := proto.Marshal(&registryv1.ClientFrame{Id: 7, Body: &registryv1.ClientFrame_Heartbeat{Heartbeat: &registryv1.Heartbeat{}}})
	f.Add(good)
	f.Add([]byte{0x08, 0x07, 0x1a, 0x03, 0x0a, 0x01, 0xff}) // id 7, a register id that is not UTF-8
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Add(forgedMark(f, protowire.BytesType, 99, "chosen by the client")) // a heartbeat carrying the mark field
	codec := newLenientCodec()
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range []proto.Message{&registryv1.ClientFrame{}, &registryv1.RegisterNodeRequest{}} {
			strict := proto.Clone(m)
			strictErr := proto.Unmarshal(b, strict)
			if strictErr == nil && hasField(strict.ProtoReflect().GetUnknown(), badMark) {
				strictErr = errReservedField
			}
			if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, m); err != nil {
				t.Fatalf("the codec failed: %v", err)
			}
			bad := badMessage(m)
			switch {
			case strictErr == nil && bad != nil:
				t.Fatalf("a message that decodes was marked: %v", bad)
			case strictErr != nil && bad == nil:
				t.Fatalf("a message that does not decode (%v) was not marked", strictErr)
			case strictErr == nil && !proto.Equal(m, strict):
				t.Fatal("the codec decoded differently from protobuf")
			}
			if bad != nil && bad.ID != leadingID(b) {
				t.Fatalf("marked with id %d, field 1 says %d", bad.ID, leadingID(b))
			}
			if bad != nil && bad.Err != strictErr.Error() {
				t.Fatalf("marked with error %q, protobuf says %q", bad.Err, strictErr)
			}
		}
	})
}
