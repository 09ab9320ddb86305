package node_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/meta"
	"github.com/strata-registry/strata/internal/node"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

// TestOptions_Build_EnrollsANodeWithoutACertificate: a session node that
// starts with an enroll token and no certificate gets one from meta,
// written where its TLS flags point, naming it; a second start reuses it.
func TestOptions_Build_EnrollsANodeWithoutACertificate(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, MetaConfig: func(_ int, cfg *meta.Config) {
		cfg.CAKeyFile = filepath.Join(filepath.Dir(cfg.TLS.CAFile), "ca-key.pem")
	}})
	const tok = "enroll-token-for-the-test-0123"
	c.SetIdentities(t, access.Entry{Name: "sessions", Role: identity.RoleEnroll, TokenSHA256: access.HashToken(tok), Enroll: []identity.Role{identity.RoleSession}})
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "enroll.token")
	if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := node.TestConfig()
	cfg.NodeID, cfg.Cluster, cfg.Insecure = "scaled-7", testcluster.Name, false
	cfg.MetaAddrs = c.MetaAddrs()
	cfg.TLS = tlsconf.Config{CertFile: filepath.Join(dir, "session", "scaled-7.pem"), KeyFile: filepath.Join(dir, "session", "scaled-7-key.pem"), CAFile: c.Credentials().CA()}
	for range 2 {
		o := node.Options{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", LogLevel: "info", LogFormat: "text",
			EnrollTokenFile: tokenFile, Role: cluster.RoleSession}
		deps, err := o.Build(os.Stderr, &cfg)
		if err != nil {
			t.Fatal(err)
		}
		deps.Close()
		creds, err := tlsconf.LoadNode(cfg.TLS, identity.ID{Cluster: testcluster.Name, Role: identity.RoleSession, Name: "scaled-7"})
		if err != nil || creds == nil {
			t.Fatalf("the enrolled certificate: %v", err)
		}
	}
	if fi, err := os.Stat(cfg.TLS.KeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file %v (%v), want 0600", fi.Mode(), err)
	}
}

// TestOptions_Build_EnrollmentRefused_FailsAtOnce: a refusal every meta
// node would repeat (here an unknown token) ends the start with meta's
// answer instead of two minutes of retries, and writes nothing.
func TestOptions_Build_EnrollmentRefused_FailsAtOnce(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, MetaConfig: func(_ int, cfg *meta.Config) {
		cfg.CAKeyFile = filepath.Join(filepath.Dir(cfg.TLS.CAFile), "ca-key.pem")
	}})
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "enroll.token")
	if err := os.WriteFile(tokenFile, []byte("not-a-token-of-this-cluster-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := node.TestConfig()
	cfg.NodeID, cfg.Cluster, cfg.Insecure = "scaled-8", testcluster.Name, false
	cfg.MetaAddrs = c.MetaAddrs()
	cfg.TLS = tlsconf.Config{CertFile: filepath.Join(dir, "session", "scaled-8.pem"), KeyFile: filepath.Join(dir, "session", "scaled-8-key.pem"), CAFile: c.Credentials().CA()}
	o := node.Options{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", LogLevel: "info", LogFormat: "text",
		EnrollTokenFile: tokenFile, Role: cluster.RoleSession}
	deps, err := o.Build(os.Stderr, &cfg)
	if err == nil {
		deps.Close()
		t.Fatal("enrolled with an unknown token")
	}
	if !strings.Contains(err.Error(), "Unauthenticated") || strings.Contains(err.Error(), "no certificate within") {
		t.Fatalf("err = %v, want meta's Unauthenticated at once, not a retry timeout", err)
	}
	for _, f := range []string{cfg.TLS.CertFile, cfg.TLS.KeyFile} {
		if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v, want none written", f, err)
		}
	}
}
