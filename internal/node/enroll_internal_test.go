package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/pki"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

// TestCheckEnrolled_KeepsOnlyACertificateForThisKeyAndNode: an issued
// certificate for another key or naming another node is refused before it
// is written (its presence would say enrollment is done); a good one is
// written whole, the key 0600.
func TestCheckEnrolled_KeepsOnlyACertificateForThisKeyAndNode(t *testing.T) {
	d := tlsconf.Dir(t.TempDir())
	if _, err := pki.Init(d, pki.Plan{Cluster: "strata", Session: []string{"s-1", "s-2"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cert1, key1 := read(d.Cert(identity.RoleSession, "s-1")), read(d.Key(identity.RoleSession, "s-1"))
	key2 := read(d.Key(identity.RoleSession, "s-2"))
	s1 := identity.ID{Cluster: "strata", Role: identity.RoleSession, Name: "s-1"}
	s2 := identity.ID{Cluster: "strata", Role: identity.RoleSession, Name: "s-2"}
	for _, tc := range []struct {
		name      string
		cert, key []byte
		want      identity.ID
		err       string
	}{
		{"for this key and node", cert1, key1, s1, ""},
		{"for another key", cert1, key2, s1, "does not go with this node's key"},
		{"naming another node", cert1, key1, s2, "names spiffe://strata/session/s-1, not spiffe://strata/session/s-2"},
		{"not PEM", []byte("garbage"), key1, s1, "does not go with"},
	} {
		err := checkEnrolled(tc.cert, tc.key, tc.want)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
		}
	}
	out := t.TempDir()
	tc := tlsconf.Config{CertFile: filepath.Join(out, "session", "s-1.pem"), KeyFile: filepath.Join(out, "session", "s-1-key.pem")}
	if err := writeEnrolled(tc, cert1, key1); err != nil {
		t.Fatal(err)
	}
	if string(read(tc.CertFile)) != string(cert1) || string(read(tc.KeyFile)) != string(key1) {
		t.Error("written files differ from what was issued")
	}
	if fi, err := os.Stat(tc.KeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v (%v), want 0600", fi.Mode(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(out, "session", ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
