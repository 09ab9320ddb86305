package node

import (
	"encoding/binary"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// forgedMark returns a heartbeat frame with id 7 that carries the codec's
// bad-message field itself, claiming id forgedID and error text forged.
func forgedMark(t testing.TB, typ protowire.Type, forgedID uint64, forged string) []byte {
	t.Helper()
	b, err := proto.Marshal(&registryv1.ClientFrame{Id: 7, Body: &registryv1.ClientFrame_Heartbeat{Heartbeat: &registryv1.Heartbeat{}}})
	if err != nil {
		t.Fatal(err)
	}
	b = protowire.AppendTag(b, badMark, typ)
	switch typ {
	case protowire.BytesType:
		b = protowire.AppendBytes(b, append(binary.BigEndian.AppendUint64(nil, forgedID), forged...))
	case protowire.VarintType:
		b = protowire.AppendVarint(b, forgedID)
	default:
		t.Fatalf("no payload for wire type %v", typ)
	}
	return b
}

func TestLenientCodec_MarkerSentByTheClient_IsADecodingError(t *testing.T) {
	codec := newLenientCodec()
	for _, typ := range []protowire.Type{protowire.BytesType, protowire.VarintType} {
		b := forgedMark(t, typ, 99, "chosen by the client")
		// The protobuf library alone accepts it, keeping the field as unknown.
		if err := proto.Unmarshal(b, &registryv1.ClientFrame{}); err != nil {
			t.Fatalf("wire type %v: the forged frame does not decode even without the codec: %v", typ, err)
		}
		m := &registryv1.ClientFrame{}
		if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, m); err != nil {
			t.Fatalf("wire type %v: the codec failed: %v", typ, err)
		}
		bad := badMessage(m)
		if bad == nil {
			t.Fatalf("wire type %v: a frame carrying the reserved field was not refused", typ)
		}
		if want := "reserved field number 536870911"; bad.Err != want || bad.ID != 7 {
			t.Errorf("wire type %v: marked with id %d, error %q; want id 7 (the frame's own), error %q", typ, bad.ID, bad.Err, want)
		}
		if m.GetHeartbeat() != nil {
			t.Errorf("wire type %v: the refused frame kept its body", typ)
		}
		// A unary request is refused the same way.
		req := &registryv1.RegisterNodeRequest{}
		if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, req); err != nil {
			t.Fatal(err)
		}
		err := badUnary(req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "reserved field number") || strings.Contains(err.Error(), "chosen by the client") {
			t.Errorf("wire type %v: unary = %v, want InvalidArgument naming the reserved field, not the sender's text", typ, err)
		}
	}
}

func TestLenientCodec_GoodAndUndecodableMessages(t *testing.T) {
	codec := newLenientCodec()
	good, err := proto.Marshal(&registryv1.ClientFrame{Id: 5, Body: &registryv1.ClientFrame_Heartbeat{Heartbeat: &registryv1.Heartbeat{}}})
	if err != nil {
		t.Fatal(err)
	}
	m := &registryv1.ClientFrame{}
	if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(good)}, m); err != nil {
		t.Fatal(err)
	}
	if bad := badMessage(m); bad != nil || m.GetId() != 5 || m.GetHeartbeat() == nil {
		t.Fatalf("a good frame: %+v, marked %v", m, bad)
	}
	notUTF8 := []byte{0x08, 0x07, 0x1a, 0x03, 0x0a, 0x01, 0xff} // id 7, a register id that is not UTF-8
	if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(notUTF8)}, m); err != nil {
		t.Fatal(err)
	}
	if bad := badMessage(m); bad == nil || bad.ID != 7 || !strings.Contains(bad.Err, "UTF-8") {
		t.Fatalf("a frame with invalid UTF-8: marked %+v, want id 7 and the UTF-8 error", bad)
	}
}
