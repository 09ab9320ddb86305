package pki

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

func TestInit_WritesAVerifiableLayout_AndKeepsItOnRerun(t *testing.T) {
	dir := tlsconf.Dir(t.TempDir())
	now := time.Now()
	plan := Plan{Cluster: "dev", Meta: []string{"meta-0"}, Data: []string{"data-0"}, Session: []string{"session-0"},
		Clients: []string{"dev"}, Admins: []string{"admin"}, Hosts: []string{"127.0.0.1", "localhost"}}
	written, err := Init(dir, plan, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 2+5*2+2+2 { // CA, 5 certs+keys, 2 tokens, tokens.yaml, gossip.key
		t.Errorf("Init wrote %d files: %v", len(written), written)
	}
	caPEM, err := os.ReadFile(dir.CA())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	for _, id := range []identity.ID{
		{Cluster: "dev", Role: identity.RoleMeta, Name: "meta-0"},
		{Cluster: "dev", Role: identity.RoleSession, Name: "session-0"},
		{Cluster: "dev", Role: identity.RoleClient, Name: "dev"},
	} {
		kp, err := tls.LoadX509KeyPair(dir.Cert(id.Role, id.Name), dir.Key(id.Role, id.Name))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		leaf, err := x509.ParseCertificate(kp.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s does not verify as a client: %v", id, err)
		}
		got, err := identity.FromCert(leaf)
		if err != nil || got != id {
			t.Errorf("certificate names %v (%v), want %v", got, err, id)
		}
		if id.Role.Node() {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost"}); err != nil {
				t.Errorf("%s does not verify as a server for localhost: %v", id, err)
			}
		}
	}
	tok, err := ReadToken(dir.Token(identity.RoleClient, "dev"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := access.LoadStore("dev", dir.Tokens())
	if err != nil {
		t.Fatal(err)
	}
	c, ok := store.Token(tok)
	if !ok || c.ID.Name != "dev" || !store.Perms(c.ID).CanPublish("x") || !store.Perms(c.ID).CanSubscribe("x") {
		t.Errorf("the dev client's token gives %+v, %v", c, ok)
	}
	if fi, err := os.Stat(dir.Key(identity.RoleMeta, "meta-0")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v (%v), want 0600", fi.Mode(), err)
	}
	if _, err := cluster.ReadKeyFile(dir.GossipKey()); err != nil {
		t.Errorf("gossip key: %v", err)
	}

	// Again, with one more session: only it is written, with the same CA.
	plan.Session = append(plan.Session, "session-1")
	written, err = Init(dir, plan, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 2 || filepath.Base(written[1]) != "session-1.pem" {
		t.Errorf("rerun wrote %v, want only session-1's key and certificate", written)
	}
	again, _ := os.ReadFile(dir.CA())
	if string(again) != string(caPEM) {
		t.Error("rerun replaced the CA")
	}
	if tok2, _ := ReadToken(dir.Token(identity.RoleClient, "dev")); tok2 != tok {
		t.Error("rerun replaced a token")
	}
}

func TestParseCA_RefusesAMismatchedKey(t *testing.T) {
	a, err := NewCA("x", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewCA("x", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bk, _ := b.KeyPEM()
	if _, err := ParseCA(a.CertPEM(), bk); err == nil {
		t.Error("a CA certificate with another CA's key was accepted")
	}
	leaf, _, err := a.Issue(identity.ID{Cluster: "x", Role: identity.RoleData, Name: "d"}, nil, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ak, _ := a.KeyPEM()
	if _, err := ParseCA(leaf, ak); err == nil {
		t.Error("a leaf certificate was accepted as a CA")
	}
	if _, err := ParseCA([]byte("junk"), ak); err == nil {
		t.Error("junk was accepted as a CA certificate")
	}
}

func TestCA_Issue_ClampsALeafToItsCAsValidity(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	ca, err := NewCA("x", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id := identity.ID{Cluster: "x", Role: identity.RoleData, Name: "d"}
	notAfter := func(validity time.Duration) time.Time {
		t.Helper()
		leaf, _, err := ca.Issue(id, nil, now, validity)
		if err != nil {
			t.Fatal(err)
		}
		c, err := parseCert(leaf)
		if err != nil {
			t.Fatal(err)
		}
		return c.NotAfter
	}
	// Asked for twice the CA's validity, the leaf ends with the CA.
	if got := notAfter(2 * time.Hour); !got.Equal(ca.Cert.NotAfter) {
		t.Errorf("a leaf asked for 2h under a 1h CA ends %v, want the CA's end %v", got, ca.Cert.NotAfter)
	}
	// Within the CA's validity, it gets what it asked for.
	if got, want := notAfter(30*time.Minute), now.Add(30*time.Minute); !got.Equal(want) {
		t.Errorf("a leaf asked for 30m ends %v, want %v", got, want)
	}
}
