package access

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-registry/strata/pkg/client/identity"
)

func TestPerms_Prefixes(t *testing.T) {
	p := Perms{Publish: []string{"a."}, Subscribe: []string{"a.", "shared."}}
	for _, tc := range []struct {
		dataID     string
		pub, subsc bool
	}{
		{"a.x", true, true},
		{"a.", true, true},
		{"b.x", false, false},
		{"shared.cfg", false, true},
		{"ab.x", false, false},
	} {
		if got := p.CanPublish(tc.dataID); got != tc.pub {
			t.Errorf("CanPublish(%q) = %v, want %v", tc.dataID, got, tc.pub)
		}
		if got := p.CanSubscribe(tc.dataID); got != tc.subsc {
			t.Errorf("CanSubscribe(%q) = %v, want %v", tc.dataID, got, tc.subsc)
		}
	}
	if !AllPerms.CanPublish("anything") || !AllPerms.CanSubscribe("") {
		t.Error("AllPerms refuses something")
	}
	if (Perms{}).CanPublish("a") || (Perms{}).CanSubscribe("a") {
		t.Error("no prefixes allow something")
	}
}

func TestCaller_Is(t *testing.T) {
	c := &Caller{ID: identity.ID{Cluster: "c", Role: identity.RoleSession, Name: "s1"}}
	for _, tc := range []struct {
		role identity.Role
		name string
		want bool
	}{
		{identity.RoleSession, "s1", true}, {identity.RoleSession, "", true}, {identity.RoleSession, "s2", false}, {identity.RoleData, "s1", false}, {identity.RoleData, "", false},
	} {
		if got := c.Is(tc.role, tc.name); got != tc.want {
			t.Errorf("Is(%s, %q) = %v, want %v", tc.role, tc.name, got, tc.want)
		}
	}
	if !(&Caller{Insecure: true}).Is(identity.RoleMeta, "m1") {
		t.Error("an insecure caller fails a check")
	}
	var none *Caller
	if none.Is(identity.RoleClient, "") {
		t.Error("a nil caller passes a check")
	}
}

func TestProcNode(t *testing.T) {
	for in, want := range map[string]string{"s1@123": "s1", "a@b@123": "a@b", "plain": "plain", "@1": ""} {
		if got := ProcNode(in); got != want {
			t.Errorf("ProcNode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseFile(t *testing.T) {
	h := HashToken("secret")
	tests := []struct {
		name    string
		yaml    string
		wantErr string
	}{
		{"empty", "", ""},
		{"good", "identities:\n- {name: a, role: client, token_sha256: " + h + ", publish: [a.], subscribe: ['*']}\n- {name: ops, role: admin}\n", ""},
		{"unknown field", "identities:\n- {name: a, role: client, tokn: x}\n", "tokn"},
		{"node role", "identities:\n- {name: a, role: data}\n", "want client, admin or enroll"},
		{"enroll", "identities:\n- {name: e, role: enroll, token_sha256: " + h + ", enroll: [session, data]}\n", ""},
		{"enroll without a token", "identities:\n- {name: e, role: enroll, enroll: [session]}\n", "needs a token"},
		{"enroll without roles", "identities:\n- {name: e, role: enroll, token_sha256: " + h + "}\n", "needs a token and the roles"},
		{"enroll of a meta node", "identities:\n- {name: e, role: enroll, token_sha256: " + h + ", enroll: [meta]}\n", "only data or session"},
		{"a client that enrolls", "identities:\n- {name: c, role: client, enroll: [session]}\n", "only an enroll identity"},
		{"bad name", "identities:\n- {name: 'a b', role: client}\n", "space"},
		{"duplicate name", "identities:\n- {name: a, role: client}\n- {name: a, role: client}\n", "a second client"},
		{"same name, other role", "identities:\n- {name: a, role: client}\n- {name: a, role: admin}\n", ""},
		{"duplicate token", "identities:\n- {name: a, role: client, token_sha256: " + h + "}\n- {name: b, role: client, token_sha256: " + h + "}\n", "same token"},
		{"short hash", "identities:\n- {name: a, role: client, token_sha256: abc}\n", "64 hex"},
		{"empty prefix", "identities:\n- {name: a, role: client, publish: ['']}\n", "prefix"},
		{"negative quota", "identities:\n- {name: a, role: client, max_registrations: -1}\n", "positive"},
		{"not yaml", "identities: [", "tokens file"},
		{"too large", strings.Repeat("#", MaxTokensFileBytes+1), "at most"},
	}
	for _, tc := range tests {
		_, err := ParseFile([]byte(tc.yaml))
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: ParseFile = %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: ParseFile error = %v, want one containing %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestStore_TokenAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("identities:\n- {name: a, role: client, token_sha256: " + HashToken("tok-a") + ", publish: [a.]}\n- {name: certonly, role: client, subscribe: ['*']}\n")
	s, err := LoadStore("c", path)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := s.Token("tok-a")
	if !ok || c.ID != (identity.ID{Cluster: "c", Role: identity.RoleClient, Name: "a"}) || !s.Perms(c.ID).CanPublish("a.x") || s.Perms(c.ID).CanPublish("b.x") {
		t.Fatalf("Token(tok-a) = %+v, %v", c, ok)
	}
	for _, bad := range []string{"", "tok-b", strings.Repeat("x", MaxTokenBytes+1)} {
		if _, ok := s.Token(bad); ok {
			t.Errorf("Token(%.10q) accepted", bad)
		}
	}
	if p := s.Perms(identity.ID{Cluster: "c", Role: identity.RoleClient, Name: "certonly"}); !p.CanSubscribe("x") || p.CanPublish("x") {
		t.Errorf("Perms(certonly) = %+v", p)
	}
	if p := s.Perms(identity.ID{Cluster: "c", Role: identity.RoleClient, Name: "unlisted"}); p.CanSubscribe("x") || p.CanPublish("x") {
		t.Errorf("Perms(unlisted) = %+v, want none", p)
	}

	// A broken file leaves the identities in force.
	write("identities: [")
	if err := s.Reload(); err == nil {
		t.Fatal("Reload of a broken file succeeded")
	}
	if _, ok := s.Token("tok-a"); !ok {
		t.Fatal("a failed reload dropped the identities")
	}
	// So does one over the size limit, even if what it starts with parses.
	write("identities: []\n#" + strings.Repeat("x", MaxTokensFileBytes) + "\n")
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "at most 1048576 bytes") {
		t.Fatalf("Reload of an oversized file = %v, want refused for its size", err)
	}
	if _, ok := s.Token("tok-a"); !ok {
		t.Fatal("a failed reload of an oversized file dropped the identities")
	}
	// A good one replaces them.
	write("identities:\n- {name: b, role: client, token_sha256: " + HashToken("tok-b") + "}\n")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Token("tok-a"); ok {
		t.Error("tok-a still accepted after it was removed from the file")
	}
	if _, ok := s.Token("tok-b"); !ok || s.Len() != 1 {
		t.Errorf("tok-b not accepted after reload (len %d)", s.Len())
	}
	if _, err := LoadStore("c", filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("LoadStore of a missing file succeeded")
	}
}
