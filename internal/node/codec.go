package node

import (
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// A message that does not decode (invalid UTF-8 in a string field, a
// truncated field) is the sender's error about that message, not the end
// of its stream. grpc-go makes any decoding error an Internal status that
// ends the stream, so the server's codec does not fail: it resets the
// message and marks it, and the interceptors answer for it. A unary call
// gets InvalidArgument; on a stream, RecvMsg returns a *BadMessageError
// carrying the message's id (its field 1, where it has one, as
// ClientFrame does), and the handler answers that one message and reads
// on.

// badMark is the field number that marks a message the codec could not
// decode: the largest there is, which no Strata message uses. Its payload
// is the message's id (8 bytes, big endian) and then the decoding error.
// Only the codec may set it: a message that arrives carrying that field
// itself (which would otherwise decode, the field kept as unknown) is a
// decoding error, so a sender cannot have its message reported bad with
// an id and an error of its choosing.
const badMark protowire.Number = protowire.MaxValidNumber

// errReservedField is the decoding error of a message that carries badMark.
var errReservedField = fmt.Errorf("reserved field number %d", badMark)

// BadMessageError is what a stream's RecvMsg returns for a message that
// did not decode: the stream itself is fine.
type BadMessageError struct {
	// ID is the message's field 1 when that is a varint (a ClientFrame's
	// id), else 0.
	ID  uint64
	Err string
}

func (e *BadMessageError) Error() string {
	return "message does not decode: " + e.Err
}

// Status is the gRPC status to answer the message with.
func (e *BadMessageError) Status() *status.Status {
	return status.New(codes.InvalidArgument, "node: the message does not decode: "+e.Err)
}

// lenientCodec is the protobuf codec of every node's gRPC server, with the
// marking above.
type lenientCodec struct{ encoding.CodecV2 }

func newLenientCodec() lenientCodec { return lenientCodec{encoding.GetCodecV2("proto")} }

func (c lenientCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	m, ok := v.(proto.Message)
	if !ok {
		return err
	}
	if err == nil {
		if !hasField(m.ProtoReflect().GetUnknown(), badMark) {
			return nil
		}
		err = errReservedField
	}
	raw := data.Materialize()
	proto.Reset(m)
	mark := binary.BigEndian.AppendUint64(nil, leadingID(raw))
	mark = append(mark, err.Error()...)
	m.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, badMark, protowire.BytesType), mark))
	return nil
}

// leadingID returns field 1 of an encoded message if it is a varint.
func leadingID(b []byte) uint64 {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0
		}
		b = b[n:]
		if num == 1 && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0
			}
			return v
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0
		}
		b = b[n:]
	}
	return 0
}

// hasField reports whether the encoded fields b hold field num, of any
// wire type. Unknown fields the protobuf library kept are well formed.
func hasField(b []byte, num protowire.Number) bool {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return false
		}
		if n == num {
			return true
		}
		b = b[l:]
		if l = protowire.ConsumeFieldValue(n, typ, b); l < 0 {
			return false
		}
		b = b[l:]
	}
	return false
}

// badMessage returns the mark of a message the codec could not decode.
func badMessage(v any) *BadMessageError {
	m, ok := v.(proto.Message)
	if !ok {
		return nil
	}
	u := m.ProtoReflect().GetUnknown()
	for len(u) > 0 {
		num, typ, n := protowire.ConsumeTag(u)
		if n < 0 {
			return nil
		}
		u = u[n:]
		if num == badMark && typ == protowire.BytesType {
			p, n := protowire.ConsumeBytes(u)
			if n < 0 || len(p) < 8 {
				return &BadMessageError{Err: "unreadable"}
			}
			return &BadMessageError{ID: binary.BigEndian.Uint64(p), Err: string(p[8:])}
		}
		n = protowire.ConsumeFieldValue(num, typ, u)
		if n < 0 {
			return nil
		}
		u = u[n:]
	}
	return nil
}

// badUnary refuses a unary request that did not decode.
func badUnary(req any) error {
	if bad := badMessage(req); bad != nil {
		return bad.Status().Err()
	}
	return nil
}

// checkedStream turns messages that did not decode into BadMessageErrors.
type checkedStream struct{ grpc.ServerStream }

func (s checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if bad := badMessage(m); bad != nil {
		return bad
	}
	return nil
}

// AsBadMessage reports whether err is a stream message that did not decode.
func AsBadMessage(err error) (*BadMessageError, bool) {
	var bad *BadMessageError
	ok := errors.As(err, &bad)
	return bad, ok
}
