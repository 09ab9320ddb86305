package record

import (
	"testing"

	"google.golang.org/protobuf/proto"

	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// FuzzParseDataInfoID: parsing never panics, and what parses is built back
// by DataInfoID exactly.
func FuzzParseDataInfoID(f *testing.F) {
	for _, s := range []string{"a#@#b#@#c", DataInfoID("com.example.x", "", ""), "#@##@#", "a#@#b", "a#@#b#@#c#@#d", "\xff#@#b#@#c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, i, g, err := ParseDataInfoID(s)
		if err != nil {
			return
		}
		if back := DataInfoID(d, i, g); back != s {
			t.Fatalf("ParseDataInfoID(%q) = %q %q %q, built back as %q", s, d, i, g, back)
		}
	})
}

// FuzzValidatePublisher: any decodable publisher is judged without a
// panic, and one that passes is within every limit.
func FuzzValidatePublisher(f *testing.F) {
	p := &registryv1.Publisher{RegisterId: "r1", DataInfoId: DataInfoID("a", "", ""), ClientVersion: 1, SessionId: "s@1", Values: [][]byte{[]byte("v")}}
	b, _ := proto.Marshal(p)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		p := &registryv1.Publisher{}
		if proto.Unmarshal(b, p) != nil {
			return
		}
		if ValidatePublisher(p) != nil {
			return
		}
		total := 0
		for _, v := range p.GetValues() {
			total += len(v)
		}
		if len(p.GetRegisterId()) > MaxStoredRegisterIDBytes || len(p.GetValues()) > MaxValues || total > MaxPublisherBytes {
			t.Fatalf("a publisher over the limits passed: %d-byte register id, %d values, %d bytes", len(p.GetRegisterId()), len(p.GetValues()), total)
		}
	})
}
