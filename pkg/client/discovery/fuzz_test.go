package discovery

import (
	"testing"
	"unicode/utf8"
)

// FuzzDecodeInstance: a record value from any publisher is read as an
// instance or refused without a panic; an instance read is normalized
// (reading it again changes nothing; a state this version does not know
// is kept as read) and survives its own encoding.
func FuzzDecodeInstance(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"addr":"10.0.0.1:80","weight":5,"zone":"az1","metadata":{"k":"v"}}`,
		`{"v":1,"addr":"h:1"}`, `{"v":0,"addr":"h:1"}`, `{"v":1,"addr":"h"}`, `{"v":1,"addr":"h:1","weight":-1}`, `raw`, `{}`,
		`{"v":1,"addr":"h:1","state":"draining"}`, `{"v":1,"addr":"h:1","state":"disabled"}`,
		`{"v":1,"addr":"h:1","state":"serving"}`, `{"v":2,"addr":"h:1","state":"warming"}`,
		`{"v":1,"addr":"h:1","state":""}`, `{"v":1,"addr":"h:1","state":null}`, `{"v":1,"addr":"h:1","state":7}`,
		`{"v":1,"addr":"h","state":"warming"}`,
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
		again := inst
		if inst.State.known() {
			if again, err = normalize(inst); err != nil {
				t.Fatalf("decoded %+v does not normalize: %v", inst, err)
			}
		} else if inst.State.Serving() {
			t.Fatalf("decoded %+v: an unknown state reads as serving", inst)
		}
		enc, err := encode(again)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decode(enc, zone)
		if err != nil || back.Addr != inst.Addr || back.Weight != inst.Weight || back.Zone != inst.Zone || back.State != inst.State {
			t.Fatalf("%+v encodes to %s, which decodes as %+v (%v)", inst, enc, back, err)
		}
	})
}
