package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/pki"
	"github.com/strata-registry/strata/internal/rpc"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
	"github.com/strata-registry/strata/pkg/client/wire"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// enrollWait bounds how long a starting node keeps asking meta for its
// certificate (meta may be starting too).
const enrollWait = 2 * time.Minute

// enroll gets a data or session node its certificate when it has none yet
// (see meta's Enroll): a new key, a request sent with the enroll token in
// tokenFile to the meta nodes in turn until one signs, and the certificate
// and key written where c.TLS names them (the key 0600). hosts go in the
// certificate. A node whose certificate file exists does nothing.
func enroll(ctx context.Context, c *Config, role cluster.Role, tokenFile string, hosts []string, logger *slog.Logger) error {
	if c.TLS.CertFile == "" || c.TLS.KeyFile == "" || c.TLS.CAFile == "" {
		return errors.New("enroll: --enroll-token-file needs where the certificate goes (--tls-cert, --tls-key, --tls-ca, or --credentials)")
	}
	if _, err := os.Stat(c.TLS.CertFile); err == nil {
		return nil
	}
	tok, err := pki.ReadToken(tokenFile)
	if err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	ca, err := tlsconf.Load(tlsconf.Config{CAFile: c.TLS.CAFile}, c.Cluster)
	if err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	keyPEM, csr, err := pki.NewRequest()
	if err != nil {
		return err
	}
	protoRole := registryv1.Role_ROLE_SESSION
	if role == cluster.RoleData {
		protoRole = registryv1.Role_ROLE_DATA
	}
	req := &registryv1.EnrollRequest{Csr: csr, Role: protoRole, NodeId: c.NodeID, Hosts: hosts}
	ctx, cancel := context.WithTimeout(ctx, enrollWait)
	defer cancel()
	pool := rpc.NewPool(ca, len(c.MetaAddrs))
	defer pool.Close()
	var last error
	for ctx.Err() == nil {
		for _, addr := range c.MetaAddrs {
			conn, err := pool.Get(addr, identity.Peer{Role: identity.RoleMeta})
			if err != nil {
				last = err
				continue
			}
			cctx, ccancel := context.WithTimeout(ctx, c.CallTimeout)
			resp, err := registryv1.NewMetaServiceClient(conn).Enroll(cctx, req, grpc.PerRPCCredentials(wire.Bearer(tok)))
			ccancel()
			if err != nil {
				last = fmt.Errorf("meta %s: %w", addr, err)
				if permanent(err) {
					// Every meta node would answer the same (a wrong token, an
					// id or host it refuses): asking for two minutes helps no one.
					return fmt.Errorf("enroll: %w", last)
				}
				continue
			}
			if err := checkEnrolled(resp.GetCertificate(), keyPEM, identity.ID{Cluster: c.Cluster, Role: identity.Role(role), Name: c.NodeID}); err != nil {
				return fmt.Errorf("enroll: meta %s: %w", addr, err)
			}
			if err := writeEnrolled(c.TLS, resp.GetCertificate(), keyPEM); err != nil {
				return err
			}
			logger.Info("enrolled: meta issued this node's certificate", "meta", addr, "cert", c.TLS.CertFile)
			return nil
		}
		logger.Warn("enroll: no meta node issued a certificate yet; retrying", "err", last)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return fmt.Errorf("enroll: no certificate within %v: %w", enrollWait, last)
}

// permanent reports whether meta's answer to an enrollment would be the
// same however often it is asked.
func permanent(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.Unauthenticated, codes.PermissionDenied, codes.AlreadyExists:
		return true
	}
	return false
}

// checkEnrolled checks the certificate meta issued before it is kept (its
// presence says enrollment is done, so a bad one would stop the node at
// every start): it is PEM, for keyPEM's key, and names want.
func checkEnrolled(certPEM, keyPEM []byte, want identity.ID) error {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("the issued certificate does not go with this node's key: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fmt.Errorf("the issued certificate: %w", err)
	}
	got, err := identity.FromCert(leaf)
	if err != nil {
		return fmt.Errorf("the issued certificate: %w", err)
	}
	if got != want {
		return fmt.Errorf("the issued certificate names %s, not %s", got, want)
	}
	return nil
}

// writeEnrolled writes the key, then the certificate (whose presence says
// enrollment is done), each whole or not at all: written aside, synced,
// then renamed, so a crash leaves no truncated file behind.
func writeEnrolled(tc tlsconf.Config, cert, key []byte) error {
	for _, f := range []struct {
		path string
		b    []byte
		mode os.FileMode
	}{{tc.KeyFile, key, 0o600}, {tc.CertFile, cert, 0o644}} {
		if err := pki.WriteFile(f.path, f.b, f.mode); err != nil {
			return fmt.Errorf("enroll: %w", err)
		}
	}
	return nil
}
