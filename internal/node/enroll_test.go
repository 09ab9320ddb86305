package node_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/identity"
	"github.com/strata-registry/strata/internal/meta"
	"github.com/strata-registry/strata/internal/node"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/internal/tlsconf"
)

// TestOptions_Build_EnrollsANodeWithoutACertificate: a session node that
// starts with an enroll token and no certificate gets one from meta,
// written where its TLS flags point, naming it; a second start reuses it.
func TestOptions_Build_EnrollsANodeWithoutACertificate(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, MetaConfig: func(_ int, cfg *meta.Config) {
		cfg.CAKeyFile = filepath.Join(filepath.Dir(cfg.TLS.CAFile), "ca-key.pem")
	}})
	const tok = "enroll-token-for-the-test-0123"
	c.SetIdentities(t, identity.Entry{Name: "sessions", Role: identity.RoleEnroll, TokenSHA256: identity.HashToken(tok), Enroll: []identity.Role{identity.RoleSession}})
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
