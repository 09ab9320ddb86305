package record

import "testing"

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
