package identity

import "testing"

// FuzzParseFile: a tokens file never panics the parser, and every entry of
// one that parses has a valid name, a client, admin or enroll role, and
// rights that make sense for it.
func FuzzParseFile(f *testing.F) {
	h := HashToken("t")
	for _, s := range []string{
		"identities:\n- {name: a, role: client, token_sha256: " + h + ", publish: [a.], subscribe: ['*'], max_registrations: 5, register_rate: 1.5}\n",
		"identities:\n- {name: ops, role: admin}\n- {name: e, role: enroll, token_sha256: " + h + ", enroll: [session]}\n",
		"identities: []\n", "", "identities: [", "x: 1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := ParseFile(b)
		if err != nil {
			return
		}
		for _, e := range file.Identities {
			if ValidName(e.Name) != nil || (e.Role != RoleClient && e.Role != RoleAdmin && e.Role != RoleEnroll) {
				t.Fatalf("accepted entry %+v", e)
			}
			if e.MaxRegistrations < 0 || e.RegisterRate < 0 || (len(e.Enroll) > 0 && e.Role != RoleEnroll) {
				t.Fatalf("accepted entry %+v", e)
			}
		}
	})
}

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
