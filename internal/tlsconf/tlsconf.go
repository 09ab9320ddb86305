// Package tlsconf turns the TLS settings every Strata role shares into
// crypto/tls configs for servers and for the clients they dial.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Config is plain data, set from flags. The zero value means plaintext.
type Config struct {
	// CertFile and KeyFile are this node's certificate and key (PEM).
	CertFile string
	KeyFile  string
	// CAFile verifies peers; required for mutual TLS and for clients that
	// should not trust the system roots.
	CAFile string
	// RequireClientCert turns on mutual TLS on servers.
	RequireClientCert bool
}

// Enabled reports whether TLS is configured.
func (c Config) Enabled() bool { return c.CertFile != "" || c.KeyFile != "" || c.CAFile != "" }

// Validate checks that the fields fit together.
func (c Config) Validate() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("tls: cert file and key file must be set together")
	}
	if c.RequireClientCert && c.CAFile == "" {
		return errors.New("tls: requiring client certificates needs a CA file")
	}
	if c.CAFile != "" && c.CertFile == "" {
		return errors.New("tls: a CA file without a cert and key serves nothing")
	}
	return nil
}

// Server returns the config for a listening node, or nil when TLS is off.
func (c Config) Server() (*tls.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.Enabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load key pair: %w", err)
	}
	out := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pool, err := loadPool(c.CAFile)
		if err != nil {
			return nil, err
		}
		out.ClientCAs = pool
		// With a CA, a client certificate is verified when offered and,
		// with RequireClientCert, demanded.
		out.ClientAuth = tls.VerifyClientCertIfGiven
		if c.RequireClientCert {
			out.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return out, nil
}

// Client returns the config for dialing other nodes, or nil when TLS is off.
// The node's own certificate is presented, for mutual TLS.
func (c Config) Client() (*tls.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.Enabled() {
		return nil, nil
	}
	out := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: load key pair: %w", err)
		}
		out.Certificates = []tls.Certificate{cert}
	}
	if c.CAFile != "" {
		pool, err := loadPool(c.CAFile)
		if err != nil {
			return nil, err
		}
		out.RootCAs = pool
	}
	return out, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tls: read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: no certificates in CA file %s", path)
	}
	return pool, nil
}
