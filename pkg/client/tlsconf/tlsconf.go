// Package tlsconf turns a node's TLS files into crypto/tls configs that
// check identities (package identity) rather than host names: a node dials
// "the data node data-3 of this cluster", not "whoever holds a certificate
// for data-3.internal", and serves only peers whose certificates name an
// identity of its cluster.
//
// Creds holds the loaded certificate, key and CA pool, and reloads them
// (SIGHUP) without restarting: handshakes after a Reload use the new files,
// links already up keep theirs.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"github.com/strata-registry/strata/pkg/client/identity"
)

// Config is plain data, set from flags. The zero value means no TLS.
type Config struct {
	// CertFile and KeyFile are this process's certificate and key (PEM).
	CertFile string
	KeyFile  string
	// CAFile holds the CAs that sign the cluster's certificates (PEM).
	CAFile string
}

// Enabled reports whether TLS is configured.
func (c Config) Enabled() bool { return c.CertFile != "" || c.KeyFile != "" || c.CAFile != "" }

// Validate checks that the fields fit together: a CA and, for anyone but a
// token-only client, a certificate and its key.
func (c Config) Validate() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("tls: cert file and key file must be set together")
	}
	if c.Enabled() && c.CAFile == "" {
		return errors.New("tls: a CA file is required to verify peers")
	}
	return nil
}

// Creds are loaded TLS credentials for one cluster. Safe for concurrent use.
type Creds struct {
	cfg     Config
	cluster string
	// self, when set, is the identity this process's certificate must name
	// (a node's own), at load and at every reload.
	self *identity.ID
	cur  atomic.Pointer[material]
}

type material struct {
	cert *tls.Certificate // nil for a token-only client
	pool *x509.CertPool
	self identity.ID // what cert names; zero without a cert
}

// Load reads cfg's files for a client (or an operator's tool) of cluster,
// whatever identity its certificate names. It returns nil, nil when TLS is
// off.
func Load(cfg Config, cluster string) (*Creds, error) {
	if err := identity.ValidCluster(cluster); err != nil {
		return nil, err
	}
	return load(cfg, &Creds{cfg: cfg, cluster: cluster})
}

// LoadNode reads a node's files: its certificate must name self, now and
// after every Reload. It returns nil, nil when TLS is off.
func LoadNode(cfg Config, self identity.ID) (*Creds, error) {
	if err := self.Validate(); err != nil {
		return nil, err
	}
	if cfg.Enabled() && cfg.CertFile == "" {
		return nil, fmt.Errorf("tls: %s needs its own certificate and key", self)
	}
	return load(cfg, &Creds{cfg: cfg, cluster: self.Cluster, self: &self})
}

func load(cfg Config, c *Creds) (*Creds, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, nil
	}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads the files again and, if they load, uses them from the next
// handshake on. On error the old ones stay.
func (c *Creds) Reload() error {
	m := &material{}
	pem, err := os.ReadFile(c.cfg.CAFile)
	if err != nil {
		return fmt.Errorf("tls: read CA file: %w", err)
	}
	m.pool = x509.NewCertPool()
	if !m.pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("tls: no certificates in CA file %s", c.cfg.CAFile)
	}
	if c.cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.cfg.CertFile, c.cfg.KeyFile)
		if err != nil {
			return fmt.Errorf("tls: load key pair: %w", err)
		}
		if cert.Leaf == nil { // GODEBUG=x509keypairleaf=0 leaves it unparsed
			if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
				return fmt.Errorf("tls: %s: %w", c.cfg.CertFile, err)
			}
		}
		if m.self, err = identity.FromCert(cert.Leaf); err != nil {
			return fmt.Errorf("tls: %s: %w", c.cfg.CertFile, err)
		}
		if m.self.Cluster != c.cluster {
			return fmt.Errorf("tls: %s names %s, of cluster %q, not %q", c.cfg.CertFile, m.self, m.self.Cluster, c.cluster)
		}
		if c.self != nil && m.self != *c.self {
			return fmt.Errorf("tls: %s names %s, but this is %s (issue one with registryctl certs)", c.cfg.CertFile, m.self, *c.self)
		}
		if err := c.checkOwn(&cert, m.pool); err != nil {
			return err
		}
		m.cert = &cert
	}
	c.cur.Store(m)
	return nil
}

// checkOwn verifies this process's certificate as its peers will: chained
// to a CA of pool through the intermediates the file holds after it, and
// valid for what the process uses it for. A node serves and dials with it
// (server and client auth); a client or an operator's tool only dials
// (client auth).
func (c *Creds) checkOwn(cert *tls.Certificate, pool *x509.CertPool) error {
	inter := x509.NewCertPool()
	for i, der := range cert.Certificate[1:] {
		ic, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("tls: %s: certificate %d of the chain: %w", c.cfg.CertFile, i+2, err)
		}
		inter.AddCert(ic)
	}
	usages := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if c.self != nil {
		usages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	// One verification per usage: VerifyOptions.KeyUsages accepts a chain
	// valid for any one of those it lists.
	for _, u := range usages {
		_, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{u}})
		var inv x509.CertificateInvalidError
		switch {
		case errors.As(err, &inv) && inv.Reason == x509.IncompatibleUsage:
			return fmt.Errorf("tls: %s is not valid for %s, which %s needs: %w", c.cfg.CertFile, usageName(u), c.purpose(), err)
		case err != nil:
			return fmt.Errorf("tls: %s is not signed by a CA in %s: %w", c.cfg.CertFile, c.cfg.CAFile, err)
		}
	}
	return nil
}

// purpose names what the credentials are for, in errors.
func (c *Creds) purpose() string {
	if c.self != nil {
		return "a node (serving and dialing)"
	}
	return "a client"
}

func usageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageServerAuth:
		return "TLS server authentication"
	case x509.ExtKeyUsageClientAuth:
		return "TLS client authentication"
	}
	return fmt.Sprintf("extended key usage %d", u)
}

// Cluster returns the cluster the credentials are for.
func (c *Creds) Cluster() string { return c.cluster }

// Self returns the identity this process's certificate names (the zero ID
// for a client without a certificate).
func (c *Creds) Self() identity.ID { return c.cur.Load().self }

// Pool returns the CA pool in use.
func (c *Creds) Pool() *x509.CertPool { return c.cur.Load().pool }

// Server returns the config for a listening node. auth is
// tls.RequireAndVerifyClientCert on ports only nodes reach and
// tls.VerifyClientCertIfGiven where clients may come with a token instead;
// a certificate that is offered must chain to the CA either way. allow,
// when set, judges the identity the client's certificate names during the
// handshake (Raft's port, which only meta nodes may speak on); otherwise
// the caller checks it later (the gRPC interceptors).
func (c *Creds) Server(auth tls.ClientAuthType, allow func(identity.ID) error) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Each handshake reads the current material, so a Reload applies
		// to the next connection.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := c.cur.Load()
			out := &tls.Config{
				MinVersion: tls.VersionTLS12, ClientCAs: m.pool, ClientAuth: auth,
				NextProtos: []string{"h2", "http/1.1"},
				// Pushes are small frames on long-lived connections:
				// the small-records-first ramp (meant for web pages on
				// lossy links) only splits them into more records.
				DynamicRecordSizingDisabled: true,
			}
			if m.cert != nil {
				out.Certificates = []tls.Certificate{*m.cert}
			}
			if allow != nil {
				// Judged against this handshake's material: a Reload
				// between ClientHello and now must not make the chain
				// crypto/tls verified against m.pool be checked against
				// another CA.
				out.VerifyConnection = func(cs tls.ConnectionState) error {
					id, err := c.verify(cs, m.pool, x509.ExtKeyUsageClientAuth)
					if err != nil {
						return err
					}
					return allow(id)
				}
			}
			return out, nil
		},
	}
}

// Client returns the config for dialing peer (a role, and a name unless
// it is empty) of this cluster, or any of also: the server's certificate
// must chain to the CA and name that identity; host names are not checked.
// This process's certificate, if it has one, is presented.
func (c *Creds) Client(peer identity.Peer, also ...identity.Peer) *tls.Config {
	return &tls.Config{
		MinVersion:                  tls.VersionTLS12,
		DynamicRecordSizingDisabled: true,
		// The chain and the identity are checked in VerifyConnection:
		// crypto/tls's own check would compare host names instead.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if m := c.cur.Load(); m.cert != nil {
				return m.cert, nil
			}
			return &tls.Certificate{}, nil // none to offer
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := c.verify(cs, c.Pool(), x509.ExtKeyUsageServerAuth)
			if err != nil {
				return err
			}
			var want []string
			for _, p := range append([]identity.Peer{peer}, also...) {
				if p.Check(c.cluster, id) == nil {
					return nil
				}
				want = append(want, p.String())
			}
			return fmt.Errorf("identity: the peer is %s, not %s of cluster %q", id, strings.Join(want, " or "), c.cluster)
		},
	}
}

// verify returns the identity the peer's certificate names, once its chain
// is verified against roots for usage: by crypto/tls already when the
// handshake has verified chains (a server demanding a client certificate,
// against the ClientCAs it handshook with, roots), else here (a client,
// which skips crypto/tls's host-name check).
func (c *Creds) verify(cs tls.ConnectionState, roots *x509.CertPool, usage x509.ExtKeyUsage) (identity.ID, error) {
	if len(cs.PeerCertificates) == 0 {
		return identity.ID{}, errors.New("tls: the peer presented no certificate")
	}
	leaf := cs.PeerCertificates[0]
	if len(cs.VerifiedChains) == 0 {
		inter := x509.NewCertPool()
		for _, ic := range cs.PeerCertificates[1:] {
			inter.AddCert(ic)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return identity.ID{}, fmt.Errorf("tls: peer certificate: %w", err)
		}
	}
	id, err := identity.FromCert(leaf)
	if err != nil {
		return identity.ID{}, err
	}
	if id.Cluster != c.cluster {
		return identity.ID{}, fmt.Errorf("tls: the peer is %s, of cluster %q, not %q", id, id.Cluster, c.cluster)
	}
	return id, nil
}
