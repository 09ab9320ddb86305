package identity

import "testing"

// FuzzParse: identities that parse print back as themselves.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"spiffe://c/data/d1", "spiffe://c/client/a@b", "spiffe://c/x", "https://c/data/d", "spiffe://c/data/a%2Fb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err != nil {
			return
		}
		if id.Validate() != nil {
			t.Fatalf("Parse(%q) = %+v, which does not validate", s, id)
		}
		again, err := Parse(id.String())
		if err != nil || again != id {
			t.Fatalf("Parse(%q) = %+v, whose String %q parses as %+v (%v)", s, id, id.String(), again, err)
		}
	})
}
