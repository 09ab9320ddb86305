// External test package: testcluster (for Certs) imports meta, which
// imports tlsconf.
package tlsconf_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/internal/tlsconf"
)

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     tlsconf.Config
		wantErr string // substring; "" means valid
	}{
		{"zero config is plaintext", tlsconf.Config{}, ""},
		{"cert and key", tlsconf.Config{CertFile: "c", KeyFile: "k"}, ""},
		{"cert, key and CA", tlsconf.Config{CertFile: "c", KeyFile: "k", CAFile: "ca"}, ""},
		{"mutual TLS", tlsconf.Config{CertFile: "c", KeyFile: "k", CAFile: "ca", RequireClientCert: true}, ""},
		{"cert without key", tlsconf.Config{CertFile: "c"}, "set together"},
		{"key without cert", tlsconf.Config{KeyFile: "k"}, "set together"},
		{"client certs without CA", tlsconf.Config{CertFile: "c", KeyFile: "k", RequireClientCert: true}, "CA file"},
		{"client certs alone", tlsconf.Config{RequireClientCert: true}, "CA file"},
		{"CA alone", tlsconf.Config{CAFile: "ca"}, "CA file without a cert"},
		{"CA and key without cert", tlsconf.Config{CAFile: "ca", KeyFile: "k"}, "set together"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate(%+v) = %v, want nil", tc.cfg, err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("Validate(%+v) = nil, want an error containing %q", tc.cfg, tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("Validate(%+v) = %q, want it to contain %q", tc.cfg, err, tc.wantErr)
			}
		})
	}
}

func TestConfig_Enabled(t *testing.T) {
	tests := []struct {
		name string
		cfg  tlsconf.Config
		want bool
	}{
		{"zero", tlsconf.Config{}, false},
		{"cert", tlsconf.Config{CertFile: "c"}, true},
		{"key", tlsconf.Config{KeyFile: "k"}, true},
		{"CA", tlsconf.Config{CAFile: "ca"}, true},
		{"full", tlsconf.Config{CertFile: "c", KeyFile: "k", CAFile: "ca", RequireClientCert: true}, true},
	}
	for _, tc := range tests {
		if got := tc.cfg.Enabled(); got != tc.want {
			t.Errorf("%s: Enabled() = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestConfig_ZeroGivesNilConfigs(t *testing.T) {
	var c tlsconf.Config
	s, err := c.Server()
	if s != nil || err != nil {
		t.Errorf("zero Server() = %v, %v; want nil, nil", s, err)
	}
	cl, err := c.Client()
	if cl != nil || err != nil {
		t.Errorf("zero Client() = %v, %v; want nil, nil", cl, err)
	}
}

func TestConfig_InvalidConfigFailsBeforeLoadingFiles(t *testing.T) {
	// The files do not exist: the error must be the validation one.
	c := tlsconf.Config{CertFile: "/nonexistent/cert.pem"}
	if _, err := c.Server(); err == nil || !strings.Contains(err.Error(), "set together") {
		t.Errorf("Server() error = %v, want the validation error", err)
	}
	if _, err := c.Client(); err == nil || !strings.Contains(err.Error(), "set together") {
		t.Errorf("Client() error = %v, want the validation error", err)
	}
}

func TestConfig_ServerAndClientFromCerts(t *testing.T) {
	cfg := testcluster.Certs(t, t.TempDir())
	srv, err := cfg.Server()
	if err != nil {
		t.Fatalf("Server(): %v", err)
	}
	if len(srv.Certificates) != 1 || srv.ClientCAs == nil || srv.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("Server() = certs %d, ClientCAs %v, ClientAuth %v; want 1 cert, a pool, RequireAndVerifyClientCert",
			len(srv.Certificates), srv.ClientCAs != nil, srv.ClientAuth)
	}
	if srv.MinVersion < tls.VersionTLS12 {
		t.Errorf("Server().MinVersion = %x, want at least TLS 1.2", srv.MinVersion)
	}
	cl, err := cfg.Client()
	if err != nil {
		t.Fatalf("Client(): %v", err)
	}
	if len(cl.Certificates) != 1 || cl.RootCAs == nil {
		t.Errorf("Client() = certs %d, RootCAs %v; want 1 cert and a pool", len(cl.Certificates), cl.RootCAs != nil)
	}
	if cl.MinVersion < tls.VersionTLS12 {
		t.Errorf("Client().MinVersion = %x, want at least TLS 1.2", cl.MinVersion)
	}
}

// handshake serves one TLS connection with srv on a loopback listener,
// dials it with cl, and returns the server's and the client's handshake
// errors. The server writes one byte after its handshake so the client, under
// TLS 1.3, also learns whether the server accepted its certificate.
func handshake(t *testing.T, srv, cl *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		tc := conn.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			done <- err
			return
		}
		_, err = tc.Write([]byte{1})
		done <- err
	}()

	cl = cl.Clone()
	cl.ServerName = "127.0.0.1"
	d := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), cl)
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadFull(conn, make([]byte, 1))
		conn.Close()
	}
	clientErr = err

	select {
	case serverErr = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("server did not finish its handshake within 10s")
	}
	return serverErr, clientErr
}

func TestConfig_MutualTLSHandshakeSucceeds(t *testing.T) {
	cfg := testcluster.Certs(t, t.TempDir())
	srv, err := cfg.Server()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := cfg.Client()
	if err != nil {
		t.Fatal(err)
	}
	serverErr, clientErr := handshake(t, srv, cl)
	if serverErr != nil || clientErr != nil {
		t.Fatalf("handshake: server %v, client %v; want both nil", serverErr, clientErr)
	}
}

func TestConfig_RequireClientCertRejectsClientWithoutCert(t *testing.T) {
	cfg := testcluster.Certs(t, t.TempDir())
	srv, err := cfg.Server()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := cfg.Client()
	if err != nil {
		t.Fatal(err)
	}
	cl = cl.Clone()
	cl.Certificates = nil // trusts the server, but has nothing to present

	serverErr, clientErr := handshake(t, srv, cl)
	if serverErr == nil {
		t.Fatal("server accepted a client without a certificate")
	}
	if clientErr == nil {
		t.Fatal("client without a certificate was not told it was rejected")
	}
}

func TestConfig_ClientRejectsServerFromOtherCA(t *testing.T) {
	server := testcluster.Certs(t, t.TempDir())
	other := testcluster.Certs(t, t.TempDir()) // a different, fresh CA
	srv, err := server.Server()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := other.Client()
	if err != nil {
		t.Fatal(err)
	}
	_, clientErr := handshake(t, srv, cl)
	if clientErr == nil {
		t.Fatal("client trusted a server signed by another CA")
	}
	var unknown x509.UnknownAuthorityError
	if !errors.As(clientErr, &unknown) {
		t.Fatalf("client error = %v, want an unknown-authority error", clientErr)
	}
}

func TestConfig_FileErrors(t *testing.T) {
	good := testcluster.Certs(t, t.TempDir())
	dir := t.TempDir()
	noPEM := filepath.Join(dir, "empty-ca.pem")
	if err := os.WriteFile(noPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name    string
		cfg     tlsconf.Config
		wantErr string
	}{
		{"missing cert file", tlsconf.Config{CertFile: missing, KeyFile: good.KeyFile}, "load key pair"},
		{"missing key file", tlsconf.Config{CertFile: good.CertFile, KeyFile: missing}, "load key pair"},
		{"missing CA file", tlsconf.Config{CertFile: good.CertFile, KeyFile: good.KeyFile, CAFile: missing}, "read CA file"},
		{"CA file without PEM", tlsconf.Config{CertFile: good.CertFile, KeyFile: good.KeyFile, CAFile: noPEM}, "no certificates"},
		{"key does not match cert", tlsconf.Config{CertFile: good.CertFile, KeyFile: good.CAFile}, "load key pair"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for side, build := range map[string]func() (*tls.Config, error){
				"Server": tc.cfg.Server,
				"Client": tc.cfg.Client,
			} {
				got, err := build()
				if err == nil {
					t.Errorf("%s() = %v, nil; want an error containing %q", side, got, tc.wantErr)
					continue
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("%s() error = %q, want it to contain %q", side, err, tc.wantErr)
				}
				if got != nil {
					t.Errorf("%s() returned a config with the error", side)
				}
			}
		})
	}
}

func TestConfig_InvalidNeverMeansPlaintext(t *testing.T) {
	bad := tlsconf.Config{RequireClientCert: true}
	if c, err := bad.Server(); err == nil || c != nil {
		t.Fatalf("Server() = %v, %v; want an error", c, err)
	}
	if c, err := bad.Client(); err == nil || c != nil {
		t.Fatalf("Client() = %v, %v; want an error", c, err)
	}
}

func TestConfig_CAWithoutRequireVerifiesOfferedCerts(t *testing.T) {
	certs := testcluster.Certs(t, t.TempDir())
	certs.RequireClientCert = false
	srv, err := certs.Server()
	if err != nil {
		t.Fatal(err)
	}
	if srv.ClientAuth != tls.VerifyClientCertIfGiven {
		t.Fatalf("ClientAuth = %v, want VerifyClientCertIfGiven", srv.ClientAuth)
	}
}
