package access

import (
	"github.com/strata-registry/strata/pkg/client/identity"
)
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
			if identity.ValidName(e.Name) != nil || (e.Role != identity.RoleClient && e.Role != identity.RoleAdmin && e.Role != identity.RoleEnroll) {
				t.Fatalf("accepted entry %+v", e)
			}
			if e.MaxRegistrations < 0 || e.RegisterRate < 0 || (len(e.Enroll) > 0 && e.Role != identity.RoleEnroll) {
				t.Fatalf("accepted entry %+v", e)
			}
		}
	})
}
