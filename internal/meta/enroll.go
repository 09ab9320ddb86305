package meta

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/pki"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Enrollment gives a new data or session node its identity when its id is
// not known in advance (a scaled container): the node makes a key, sends a
// certificate request with an enroll identity's token, and a meta node that
// holds the CA key (--ca-key-file) signs a certificate naming
// spiffe://<cluster>/<role>/<node id>. The key never leaves the node. An
// enroll identity may ask only for the roles its tokens file entry lists,
// never for a meta node, and never for an id the cluster knows of now (a
// member, a gossip pool member or a Raft server: that would be another
// node's identity). The certificate's host names are the node's id and
// localhost, its IP addresses loopback or the address the request came
// from: an enroll token cannot get a certificate for another host's name.
//
// An id that left the cluster can be enrolled again while the departed
// node's certificate is still valid, so an enroll identity is as strong as
// a node of each role it lists: give it the session role only, unless data
// nodes must enroll (docs/security.md).

// Limits on an enrollment request.
const (
	maxCSRBytes   = 8 << 10
	maxEnrollHost = 16
	maxHostBytes  = 253
)

// loadIssuer reads the CA a meta node signs enrollments with, or nil when
// it has no CA key. Enroll reads it for each request (they are rare), so
// a rotated CA file applies without a restart.
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
	ca, err := pki.ParseCA(cb, kb)
	if err != nil {
		return nil, fmt.Errorf("meta: CA for enrollment: %w", err)
	}
	return ca, nil
}

// Enroll issues a certificate for a new node (see above).
func (v *service) Enroll(ctx context.Context, req *registryv1.EnrollRequest) (*registryv1.EnrollResponse, error) {
	s := v.s
	if s.cfg.CAKeyFile == "" {
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
	c := access.FromContext(ctx)
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
		if err := enrollHost(h, req.GetNodeId(), peerIP(ctx)); err != nil {
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
	if err := s.knownNode(req.GetNodeId()); err != nil {
		return nil, toStatus(err)
	}
	issuer, err := loadIssuer(s.cfg)
	if err != nil {
		s.logger.Error("enrollment refused: cannot read the CA", "err", err)
		return nil, status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	id := identity.ID{Cluster: s.cfg.Cluster, Role: role, Name: req.GetNodeId()}
	cert, err := issuer.Sign(csr.PublicKey, id, req.GetHosts(), s.clock.Now(), s.cfg.EnrollValidity)
	if err != nil {
		return nil, toStatus(invalid("enroll: %v", err))
	}
	s.logger.Info("enrolled a node", "identity", id.String(), "by", c.String(), "hosts", req.GetHosts())
	return &registryv1.EnrollResponse{Certificate: cert, Ca: issuer.CertPEM()}, nil
}

// knownNode refuses an id the cluster knows of now: a member, a member of
// the gossip pool (any state) or a Raft server.
func (s *Server) knownNode(id string) error {
	if _, ok := s.fsm.Current().Members[id]; ok {
		return fmt.Errorf("%w: %s is a member; a node enrolls before it first registers", ErrDuplicateNode, id)
	}
	for _, m := range s.Agent().Members() {
		if m.ID == id {
			return fmt.Errorf("%w: %s is in the gossip pool (a %s node)", ErrDuplicateNode, id, m.Meta.Role)
		}
	}
	if fut := s.raft.raft.GetConfiguration(); fut.Error() == nil {
		for _, srv := range fut.Configuration().Servers {
			if string(srv.ID) == id {
				return fmt.Errorf("%w: %s is a meta node", ErrDuplicateNode, id)
			}
		}
	}
	return nil
}

// peerIP returns the address a request came from, nil if unknown.
func peerIP(ctx context.Context) net.IP {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return nil
	}
	host, _, err := net.SplitHostPort(p.Addr.String())
	if err != nil {
		return nil
	}
	return net.ParseIP(host)
}

// enrollHost accepts what an enrolling node may name in its certificate:
// its own id and localhost as DNS names; loopback or from, the address
// its request came from, as IP addresses.
func enrollHost(h, nodeID string, from net.IP) error {
	if ip := net.ParseIP(h); ip != nil {
		if ip.IsLoopback() || (from != nil && ip.Equal(from)) {
			return nil
		}
		return fmt.Errorf("an IP address must be loopback or the one the request came from (%v)", from)
	}
	if err := validHost(h); err != nil {
		return err
	}
	if !strings.EqualFold(h, nodeID) && !strings.EqualFold(h, "localhost") {
		return fmt.Errorf("a host name must be the node's id (%s) or localhost", nodeID)
	}
	return nil
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
