package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/pki"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

// listDir returns every file and directory under dir, relative, with a
// trailing slash on directories, sorted.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// checkNodeCert checks that dir holds a certificate and key for id, signed
// by dir's CA (the files a node started with --credentials dir loads).
func checkNodeCert(t *testing.T, dir tlsconf.Dir, id identity.ID) {
	t.Helper()
	cfg := dir.TLS(id.Role, id.Name)
	if _, err := tlsconf.LoadNode(cfg, id); err != nil {
		t.Errorf("%s in %s: %v", id, dir, err)
	}
}

// tokensEntry returns the tokens file's entry for role/name in dir.
func tokensEntry(t *testing.T, dir tlsconf.Dir, role identity.Role, name string) (access.Entry, bool) {
	t.Helper()
	b, err := os.ReadFile(dir.Tokens())
	if err != nil {
		t.Fatal(err)
	}
	f, err := access.ParseFile(b)
	if err != nil {
		t.Fatalf("%s: %v", dir.Tokens(), err)
	}
	for _, e := range f.Identities {
		if e.Role == role && e.Name == name {
			return e, true
		}
	}
	return access.Entry{}, false
}

func idOf(role identity.Role, name string) identity.ID {
	return identity.ID{Cluster: identity.DefaultCluster, Role: role, Name: name}
}

func TestCertsInit_WritesEveryIdentity_AndKeepsThemOnARerun(t *testing.T) {
	dir := tlsconf.Dir(filepath.Join(t.TempDir(), "certs"))
	out, _, err := execute(t, "certs", "init", string(dir), "--meta-nodes", "m1", "--data-nodes", "d1", "--session-nodes", "s1", "--enrollers", "sessions")
	if err != nil {
		t.Fatalf("certs init: %v\n%s", err, out)
	}
	want := []string{
		"admin/", "admin/admin-key.pem", "admin/admin.pem", "admin/admin.token",
		"ca-key.pem", "ca.pem",
		"client/", "client/dev-key.pem", "client/dev.pem", "client/dev.token",
		"data/", "data/d1-key.pem", "data/d1.pem",
		"enroll/", "enroll/sessions.token",
		"gossip.key",
		"meta/", "meta/m1-key.pem", "meta/m1.pem",
		"session/", "session/s1-key.pem", "session/s1.pem",
		"tokens.yaml",
	}
	if got := listDir(t, string(dir)); !slices.Equal(got, want) {
		t.Fatalf("certs init wrote\n%v\nwant\n%v", got, want)
	}
	for _, n := range []identity.ID{idOf(identity.RoleMeta, "m1"), idOf(identity.RoleData, "d1"), idOf(identity.RoleSession, "s1")} {
		checkNodeCert(t, dir, n)
	}
	for _, secret := range []string{dir.CAKey(), dir.Key(identity.RoleMeta, "m1"), dir.Token(identity.RoleAdmin, "admin"), dir.GossipKey()} {
		if st, err := os.Stat(secret); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (err %v), want 0600", secret, st.Mode().Perm(), err)
		}
	}
	if e, ok := tokensEntry(t, dir, identity.RoleEnroll, "sessions"); !ok || !slices.Equal(e.Enroll, []identity.Role{identity.RoleSession}) {
		t.Errorf("tokens file entry for enroll/sessions = %+v (found %v), want one enrolling sessions", e, ok)
	}
	if _, ok := tokensEntry(t, dir, identity.RoleClient, "dev"); !ok {
		t.Error("the tokens file lists no client dev")
	}

	caBefore, _ := os.ReadFile(dir.CA())
	out, _, err = execute(t, "certs", "init", string(dir), "--meta-nodes", "m1", "--data-nodes", "d1", "--session-nodes", "s1", "--enrollers", "sessions")
	if err != nil || !strings.Contains(out, "already holds every credential asked for") {
		t.Fatalf("certs init again: err %v, output:\n%s", err, out)
	}
	out, _, err = execute(t, "certs", "init", string(dir), "--data-nodes", "d1,d2")
	if err != nil {
		t.Fatal(err)
	}
	if wrote := strings.Count(out, "wrote "); wrote != 2 || !strings.Contains(out, dir.Cert(identity.RoleData, "d2")) {
		t.Errorf("adding data node d2 wrote %d files, want its certificate and key:\n%s", wrote, out)
	}
	if caAfter, _ := os.ReadFile(dir.CA()); string(caAfter) != string(caBefore) {
		t.Error("a rerun replaced the CA")
	}
	checkNodeCert(t, dir, idOf(identity.RoleData, "d2"))
}

func TestCertsInit_RefusesBadInput_WritingNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no directory", nil, "accepts 1 arg"},
		{"node id with a space", []string{"--meta-nodes", "meta 1"}, `meta "meta 1"`},
		{"client with a slash", []string{"--clients", "a/b"}, `client "a/b"`},
		{"enroller with a space", []string{"--enrollers", "a b"}, `enroll "a b"`},
		{"bad cluster", []string{"--cluster", "no/slash"}, "--cluster"},
		{"zero validity", []string{"--validity", "0s"}, "--validity must be positive"},
		{"negative validity", []string{"--validity", "-1h"}, "--validity must be positive"},
		{"export without items", []string{"--export", "/tmp/x="}, "want DIR=ROLE/NAME"},
		{"export without directory", []string{"--export", "=meta/m1"}, "want DIR=ROLE/NAME"},
		{"export item without a role", []string{"--export", "/tmp/x=m1"}, `item "m1": want ROLE/NAME or ca-key`},
		{"export of an unknown role", []string{"--export", "/tmp/x=root/m1"}, `unknown role "root"`},
		{"export of a bad name", []string{"--export", "/tmp/x=meta/"}, "name is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "certs")
			args := []string{"certs", "init"}
			if tc.args != nil {
				args = append(append(args, dir), tc.args...)
			}
			_, _, err := execute(t, args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("refused input, yet %s was written: %v", dir, listDir(t, dir))
			}
		})
	}
}

func TestCertsInit_Export_HandsEachNodeOnlyItsShare(t *testing.T) {
	root := t.TempDir()
	dir := tlsconf.Dir(filepath.Join(root, "ca"))
	ex := func(name string) string { return filepath.Join(root, name) }
	args := []string{"certs", "init", string(dir), "--meta-nodes", "m1,m2", "--data-nodes", "d1,d2", "--enrollers", "sessions",
		"--export", ex("m1") + "=meta/m1,ca-key",
		"--export", ex("d1") + "=data/d1",
		"--export", ex("session") + "=enroll/sessions",
		"--export", ex("operator") + "=admin/admin,client/dev"}
	if out, _, err := execute(t, args...); err != nil {
		t.Fatalf("certs init --export: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		export string
		want   []string
	}{
		{"m1", []string{"ca-key.pem", "ca.pem", "gossip.key", "meta/", "meta/m1-key.pem", "meta/m1.pem", "tokens.yaml"}},
		{"d1", []string{"ca.pem", "data/", "data/d1-key.pem", "data/d1.pem", "gossip.key", "tokens.yaml"}},
		// session/ is where an enrolled session writes its certificate.
		{"session", []string{"ca.pem", "enroll/", "enroll/sessions.token", "gossip.key", "session/", "tokens.yaml"}},
		{"operator", []string{"admin/", "admin/admin-key.pem", "admin/admin.pem", "admin/admin.token", "ca.pem", "client/", "client/dev-key.pem", "client/dev.pem", "client/dev.token"}},
	} {
		if got := listDir(t, ex(tc.export)); !slices.Equal(got, tc.want) {
			t.Errorf("export %s holds\n%v\nwant\n%v", tc.export, got, tc.want)
		}
	}
	checkNodeCert(t, tlsconf.Dir(ex("m1")), idOf(identity.RoleMeta, "m1"))
	checkNodeCert(t, tlsconf.Dir(ex("d1")), idOf(identity.RoleData, "d1"))
	if st, err := os.Stat(tlsconf.Dir(ex("m1")).CAKey()); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("exported CA key: mode %v (err %v), want 0600", st.Mode().Perm(), err)
	}

	// A rerun writes nothing; a key rotated in the directory reaches the
	// exports holding the gossip key, and only their copies are written.
	if out, _, err := execute(t, args...); err != nil || !strings.Contains(out, "already holds every credential asked for") {
		t.Fatalf("rerun: err %v, output:\n%s", err, out)
	}
	if _, _, err := execute(t, "keyring", "install", dir.GossipKey()); err != nil {
		t.Fatal(err)
	}
	out, _, err := execute(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	wantWritten := []string{tlsconf.Dir(ex("m1")).GossipKey(), tlsconf.Dir(ex("d1")).GossipKey(), tlsconf.Dir(ex("session")).GossipKey()}
	var written []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		written = append(written, strings.TrimPrefix(l, "wrote "))
	}
	if !slices.Equal(written, wantWritten) {
		t.Errorf("after a rotation, wrote %v, want %v", written, wantWritten)
	}
	for _, e := range []string{"m1", "d1", "session"} {
		if keys, err := cluster.ReadKeyFile(tlsconf.Dir(ex(e)).GossipKey()); err != nil || len(keys) != 2 {
			t.Errorf("export %s: %d gossip keys (err %v), want the two of the rotation", e, len(keys), err)
		}
	}
}

func TestCertsInit_Export_RefusesWhatTheDirectoryDoesNotHold(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "ca")
	for _, tc := range []struct {
		name, export, want string
	}{
		{"a node not made", filepath.Join(root, "x") + "=meta/m9", "m9.pem does not exist"},
		{"an enroller not made", filepath.Join(root, "x") + "=enroll/nobody", `no enroll identity "nobody"`},
		{"the directory itself", dir + "=data/d1", "is the credentials directory itself"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := execute(t, "certs", "init", dir, "--data-nodes", "d1", "--export", tc.export)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestCertsIssue(t *testing.T) {
	dir := tlsconf.Dir(filepath.Join(t.TempDir(), "certs"))
	if _, _, err := execute(t, "certs", "issue", string(dir), "s9", "--role", "session"); err == nil || !strings.Contains(err.Error(), "has no CA to issue from") {
		t.Fatalf("issue without a CA: err = %v", err)
	}
	if _, err := os.Stat(string(dir)); err == nil {
		t.Fatal("issue without a CA wrote the directory")
	}
	if _, _, err := execute(t, "certs", "init", string(dir)); err != nil {
		t.Fatal(err)
	}
	caBefore, _ := os.ReadFile(dir.CA())

	out, _, err := execute(t, "certs", "issue", string(dir), "s9", "--role", "session")
	if err != nil || strings.Count(out, "wrote ") != 2 {
		t.Fatalf("issue a session: err %v, output:\n%s", err, out)
	}
	checkNodeCert(t, dir, idOf(identity.RoleSession, "s9"))
	if out, _, err := execute(t, "certs", "issue", string(dir), "s9", "--role", "session"); err != nil || !strings.Contains(out, "already holds session/s9") {
		t.Errorf("issue it again: err %v, output:\n%s", err, out)
	}

	out, _, err = execute(t, "certs", "issue", string(dir), "autoscaler", "--role", "enroll")
	if err != nil || !strings.Contains(out, dir.Token(identity.RoleEnroll, "autoscaler")) || !strings.Contains(out, dir.Tokens()) {
		t.Fatalf("issue an enroll identity: err %v, output:\n%s", err, out)
	}
	tok, err := pki.ReadToken(dir.Token(identity.RoleEnroll, "autoscaler"))
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := tokensEntry(t, dir, identity.RoleEnroll, "autoscaler"); !ok || e.TokenSHA256 != access.HashToken(tok) || !slices.Equal(e.Enroll, []identity.Role{identity.RoleSession}) {
		t.Errorf("tokens file entry for the enroll identity = %+v (found %v)", e, ok)
	}

	if _, _, err := execute(t, "certs", "issue", string(dir), "orders", "--role", "client"); err != nil {
		t.Fatal(err)
	}
	if _, ok := tokensEntry(t, dir, identity.RoleClient, "orders"); !ok {
		t.Error("issue --role client added no tokens file entry")
	}
	if caAfter, _ := os.ReadFile(dir.CA()); string(caAfter) != string(caBefore) {
		t.Error("issue replaced the CA")
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no role", []string{string(dir), "x"}, `required flag(s) "role" not set`},
		{"unknown role", []string{string(dir), "x", "--role", "root"}, `--role "root": want meta, data, session, client, admin or enroll`},
		{"bad name", []string{string(dir), "a b", "--role", "data"}, `data "a b"`},
		{"no name", []string{string(dir), "--role", "data"}, "accepts 2 arg"},
		{"two names", []string{string(dir), "a", "b", "--role", "data"}, "accepts 2 arg"},
		{"zero validity", []string{string(dir), "x", "--role", "data", "--validity", "0s"}, "--validity must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := execute(t, append([]string{"certs", "issue"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}

	// Where the CA key is not, nothing can be issued, and the error says so.
	if err := os.Remove(dir.CAKey()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := execute(t, "certs", "issue", string(dir), "d7", "--role", "data"); err == nil || !strings.Contains(err.Error(), "its key cannot be read") {
		t.Errorf("issue without the CA key: err = %v", err)
	}
	if _, err := os.Stat(dir.Cert(identity.RoleData, "d7")); err == nil {
		t.Error("issue without the CA key wrote a certificate")
	}
}
