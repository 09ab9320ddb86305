package discovery

import (
	"testing"
	"unicode/utf8"
)

// FuzzDecodeInstance: a record value from any publisher is read as an
// instance or refused without a panic; an instance read is normalized
// (reading it again changes nothing) and survives its own encoding.
func FuzzDecodeInstance(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"addr":"10.0.0.1:80","weight":5,"zone":"az1","metadata":{"k":"v"}}`,
		`{"v":1,"addr":"h:1"}`, `{"v":0,"addr":"h:1"}`, `{"v":1,"addr":"h"}`, `{"v":1,"addr":"h:1","weight":-1}`, `raw`, `{}`,
	} {
		f.Add([]byte(s), "az0")
	}
	f.Fuzz(func(t *testing.T, b []byte, zone string) {
		if !utf8.ValidString(zone) {
			return // a pushed value's zone is a protobuf string: UTF-8
		}
		inst, err := decode(b, zone)
		if err != nil {
			return
		}
		again, err := normalize(inst)
		if err != nil {
			t.Fatalf("decoded %+v does not normalize: %v", inst, err)
		}
		enc, err := encode(again)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decode(enc, zone)
		if err != nil || back.Addr != inst.Addr || back.Weight != inst.Weight || back.Zone != inst.Zone {
			t.Fatalf("%+v encodes to %s, which decodes as %+v (%v)", inst, enc, back, err)
		}
	})
}
