package main

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/strata-registry/strata/internal/identity"
	"github.com/strata-registry/strata/internal/pki"
	"github.com/strata-registry/strata/internal/tlsconf"
)

// Which identity registryctl acts as: an operator (admin) for the cluster
// commands (members, slots, health...), a client for pub, sub and get.
// Either comes from the --tls-* files (one identity for every command), or
// from a --credentials directory (registryctl certs init), which holds one
// of each.

// adminCreds returns the credentials for calls to meta (nil without TLS).
func (g *globals) adminCreds() (*tlsconf.Creds, error) {
	return g.creds(identity.RoleAdmin, g.adminName)
}

// creds loads the TLS files for role's name: the --tls-* flags when set,
// else the --credentials directory's.
func (g *globals) creds(role identity.Role, name string) (*tlsconf.Creds, error) {
	cfg := g.tls
	if !cfg.Enabled() && g.credentials != "" {
		d := pki.Dir(g.credentials)
		cfg = tlsconf.Config{CertFile: d.Cert(role, name), KeyFile: d.Key(role, name), CAFile: d.CA()}
		if role == identity.RoleClient && g.clientToken() != "" {
			cfg.CertFile, cfg.KeyFile = "", "" // the token is the identity
		}
	}
	c, err := tlsconf.Load(cfg, g.cluster)
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	return c, nil
}

// clientToken returns the bearer token of --token, or "".
func (g *globals) clientToken() string { return g.token }

// clientTLS returns the *tls.Config the SDK dials sessions (and meta, to
// find them) with: the client identity's certificate (none with --token)
// and a check that the server is a session or meta node of the cluster.
// Nil without TLS.
func (g *globals) clientTLS() (*tls.Config, error) {
	c, err := g.creds(identity.RoleClient, g.clientName)
	if err != nil || c == nil {
		return nil, err
	}
	tc := c.Client(identity.Peer{Role: identity.RoleSession})
	verify := tc.VerifyConnection
	meta := c.Client(identity.Peer{Role: identity.RoleMeta}).VerifyConnection
	// The SDK dials sessions and, with --session "", meta nodes through the
	// same config: either is fine.
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := verify(cs); err != nil {
			if merr := meta(cs); merr != nil {
				return errors.Join(err, merr)
			}
		}
		return nil
	}
	return tc, nil
}

// adminToken returns the bearer token for admin HTTP: --admin-token, else
// the --credentials directory's operator token (if it has one).
func (g *globals) httpToken() string {
	if g.adminToken != "" || g.credentials == "" {
		return g.adminToken
	}
	tok, err := pki.ReadToken(pki.Dir(g.credentials).Token(identity.RoleAdmin, g.adminName))
	if err != nil {
		return ""
	}
	return tok
}
