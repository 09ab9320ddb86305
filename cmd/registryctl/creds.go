package main

import (
	"fmt"

	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

// Which identity registryctl acts as: an operator (admin) for the cluster
// commands (members, slots, health...), a client for pub, sub and get.
// Either comes from the --tls-* files (one identity for every command), or
// from a --credentials directory (registryctl certs init), which holds one
// of each.

// adminCreds loads the credentials for the cluster commands' calls to
// meta and admin HTTP: the --tls-* files when set, else the --credentials
// directory's operator. Nil without TLS. A command loads them once and
// uses them for both (withMeta, acrossNodes).
func (g *globals) adminCreds() (*tlsconf.Creds, error) {
	cfg := g.tls
	if !cfg.Enabled() && g.credentials != "" {
		d := tlsconf.Dir(g.credentials)
		cfg = d.TLS(identity.RoleAdmin, g.adminName)
	}
	c, err := tlsconf.Load(cfg, g.cluster)
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	return c, nil
}

// clientCreds returns the SDK's credentials for pub, sub and get: the
// --tls-* files, else the --credentials directory's client identity (no
// certificate with --token). Nil without TLS.
func (g *globals) clientCreds() *client.Credentials {
	switch {
	case g.tls.Enabled():
		return &client.Credentials{Cluster: g.cluster, CertFile: g.tls.CertFile, KeyFile: g.tls.KeyFile, CAFile: g.tls.CAFile}
	case g.credentials != "":
		name := g.clientName
		if g.token != "" {
			name = "" // the token is the identity
		}
		c := client.CredentialsDir(g.credentials, name)
		c.Cluster = g.cluster
		return &c
	}
	return nil
}
