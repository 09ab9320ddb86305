package tlsconf_test

import (
	"testing"

	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

// TestDir_Layout: the paths are registryctl certs init's layout, and TLS
// leaves the certificate out for a name-less (token) client.
func TestDir_Layout(t *testing.T) {
	d := tlsconf.Dir("/c")
	for got, want := range map[string]string{
		d.CA(): "/c/ca.pem", d.CAKey(): "/c/ca-key.pem", d.Tokens(): "/c/tokens.yaml", d.GossipKey(): "/c/gossip.key",
		d.Cert(identity.RoleSession, "s1"): "/c/session/s1.pem", d.Key(identity.RoleSession, "s1"): "/c/session/s1-key.pem",
		d.Token(identity.RoleClient, "dev"): "/c/client/dev.token",
	} {
		if got != want {
			t.Errorf("path %q, want %q", got, want)
		}
	}
	if got, want := d.TLS(identity.RoleClient, "dev"), (tlsconf.Config{CertFile: "/c/client/dev.pem", KeyFile: "/c/client/dev-key.pem", CAFile: "/c/ca.pem"}); got != want {
		t.Errorf("TLS(client, dev) = %+v, want %+v", got, want)
	}
	if got, want := d.TLS(identity.RoleClient, ""), (tlsconf.Config{CAFile: "/c/ca.pem"}); got != want {
		t.Errorf("TLS(client, \"\") = %+v, want %+v", got, want)
	}
}
