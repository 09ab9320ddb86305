package publisher

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// FuzzValidatePublisher: any decodable publisher is judged without a
// panic, and one that passes is within every limit.
func FuzzValidatePublisher(f *testing.F) {
	p := &registryv1.Publisher{RegisterId: "r1", DataInfoId: record.DataInfoID("a", "", ""), ClientVersion: 1, SessionId: "s@1", Values: [][]byte{[]byte("v")}}
	b, _ := proto.Marshal(p)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		p := &registryv1.Publisher{}
		if proto.Unmarshal(b, p) != nil {
			return
		}
		if Validate(p) != nil {
			return
		}
		total := 0
		for _, v := range p.GetValues() {
			total += len(v)
		}
		if len(p.GetRegisterId()) > MaxStoredRegisterIDBytes || len(p.GetValues()) > record.MaxValues || total > record.MaxPublisherBytes {
			t.Fatalf("a publisher over the limits passed: %d-byte register id, %d values, %d bytes", len(p.GetRegisterId()), len(p.GetValues()), total)
		}
	})
}
