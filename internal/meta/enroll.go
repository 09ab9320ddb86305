package meta

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/strata-registry/strata/internal/identity"
	"github.com/strata-registry/strata/internal/pki"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Enrollment gives a new data or session node its identity when its id is
// not known in advance (a scaled container): the node makes a key, sends a
// certificate request with an enroll identity's token, and a meta node that
// holds the CA key (--ca-key-file) signs a certificate naming
// spiffe://<cluster>/<role>/<node id>. The key never leaves the node. An
// enroll identity may ask only for the roles its tokens file entry lists,
// never for a meta node, and never for an id that is already a member (that
// would be another node's identity).

// Limits on an enrollment request.
const (
	maxCSRBytes   = 8 << 10
	maxEnrollHost = 16
	maxHostBytes  = 253
)

// loadIssuer reads the CA a meta node signs enrollments with, or nil when
// it has no CA key.
func loadIssuer(cfg Config) (*pki.CA, error) {
	if cfg.CAKeyFile == "" {
		return nil, nil
	}
	cb, err := os.ReadFile(cfg.TLS.CAFile)
	if err != nil {
		return nil, fmt.Errorf("meta: CA certificate for enrollment: %w", err)
	}
	kb, err := os.ReadFile(cfg.CAKeyFile)
	if err != nil {
		return nil, fmt.Errorf("meta: CA key for enrollment: %w", err)
	}
	return pki.ParseCA(cb, kb)
}

// Enroll issues a certificate for a new node (see above).
func (v *service) Enroll(ctx context.Context, req *registryv1.EnrollRequest) (*registryv1.EnrollResponse, error) {
	s := v.s
	if s.issuer == nil {
		return nil, toStatus(fmt.Errorf("%w: this meta node issues no certificates (it has no --ca-key-file)", ErrNotIssuer))
	}
	var role identity.Role
	switch req.GetRole() {
	case registryv1.Role_ROLE_DATA:
		role = identity.RoleData
	case registryv1.Role_ROLE_SESSION:
		role = identity.RoleSession
	default:
		return nil, toStatus(invalid("enroll: role %v: only data and session nodes enroll", req.GetRole()))
	}
	c := identity.FromContext(ctx)
	if !s.Perms(c).CanEnroll(role) {
		return nil, toStatus(permissionDenied("%s may not enroll %s nodes", c, role))
	}
	if err := validNodeID(req.GetNodeId()); err != nil {
		return nil, toStatus(invalid("enroll: %v", err))
	}
	if len(req.GetHosts()) > maxEnrollHost {
		return nil, toStatus(invalid("enroll: %d hosts, at most %d allowed", len(req.GetHosts()), maxEnrollHost))
	}
	for _, h := range req.GetHosts() {
		if err := validHost(h); err != nil {
			return nil, toStatus(invalid("enroll: host %q: %v", h, err))
		}
	}
	if len(req.GetCsr()) > maxCSRBytes {
		return nil, toStatus(invalid("enroll: the certificate request is %d bytes, at most %d allowed", len(req.GetCsr()), maxCSRBytes))
	}
	csr, err := x509.ParseCertificateRequest(req.GetCsr())
	if err == nil {
		err = csr.CheckSignature()
	}
	if err != nil {
		return nil, toStatus(invalid("enroll: certificate request: %v", err))
	}
	if _, ok := s.fsm.Current().Members[req.GetNodeId()]; ok {
		return nil, toStatus(fmt.Errorf("%w: %s is a member; a node enrolls before it first registers", ErrDuplicateNode, req.GetNodeId()))
	}
	id := identity.ID{Cluster: s.cfg.Cluster, Role: role, Name: req.GetNodeId()}
	cert, err := s.issuer.Sign(csr.PublicKey, id, req.GetHosts(), s.clock.Now(), s.cfg.EnrollValidity)
	if err != nil {
		return nil, toStatus(invalid("enroll: %v", err))
	}
	s.logger.Info("enrolled a node", "identity", id.String(), "by", c.String(), "hosts", req.GetHosts())
	return &registryv1.EnrollResponse{Certificate: cert, Ca: s.issuer.CertPEM()}, nil
}

// validHost accepts an IP or a DNS name.
func validHost(h string) error {
	if net.ParseIP(h) != nil {
		return nil
	}
	if h == "" || len(h) > maxHostBytes {
		return fmt.Errorf("want 1..%d bytes", maxHostBytes)
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("empty or over-long label")
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("%q is not a DNS name character", r)
			}
		}
	}
	return nil
}
