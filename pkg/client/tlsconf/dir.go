package tlsconf

import (
	"path/filepath"

	"github.com/strata-registry/strata/pkg/client/identity"
)

// Dir is a credentials directory, as `registryctl certs init` writes it
// and nodes (--credentials DIR), registryctl and the SDK
// (client.CredentialsDir) read it:
//
//	ca.pem, ca-key.pem                 the CA (ca-key.pem only where certificates are issued)
//	<role>/<name>.pem, <name>-key.pem  a node's, client's or operator's certificate and key
//	<role>/<name>.token                a client's or operator's bearer token
//	tokens.yaml                        the tokens file (SHA-256 of each token, and rights)
//	gossip.key                         the gossip encryption keys, base64, primary first
//
// Its methods only name paths; nothing is read or checked.
type Dir string

// CA returns the CA certificate's path.
func (d Dir) CA() string { return filepath.Join(string(d), "ca.pem") }

// CAKey returns the CA key's path.
func (d Dir) CAKey() string { return filepath.Join(string(d), "ca-key.pem") }

// Cert returns the path of the certificate of role's name.
func (d Dir) Cert(role identity.Role, name string) string {
	return filepath.Join(string(d), string(role), name+".pem")
}

// Key returns the path of the key of role's name.
func (d Dir) Key(role identity.Role, name string) string {
	return filepath.Join(string(d), string(role), name+"-key.pem")
}

// TLS returns the files of role's name: its certificate and key, and the
// CA. An empty name leaves the certificate out (a client with a token).
func (d Dir) TLS(role identity.Role, name string) Config {
	c := Config{CAFile: d.CA()}
	if name != "" {
		c.CertFile, c.KeyFile = d.Cert(role, name), d.Key(role, name)
	}
	return c
}

// Token returns the path of the bearer token of a client or operator.
func (d Dir) Token(role identity.Role, name string) string {
	return filepath.Join(string(d), string(role), name+".token")
}

// Tokens returns the tokens file's path.
func (d Dir) Tokens() string { return filepath.Join(string(d), "tokens.yaml") }

// GossipKey returns the gossip key file's path.
func (d Dir) GossipKey() string { return filepath.Join(string(d), "gossip.key") }
