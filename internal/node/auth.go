package node

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/admin"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/wire"
)

// Policy says which roles may call each gRPC method of a node, by full
// method name ("/registry.v1.MetaService/RegisterNode"). A method it does
// not list is refused to everyone: a service added without a line here is
// closed, not open. What a method additionally requires of its caller (a
// data node registering under its own id, a session writing under its own
// session id) the handler checks with access.FromContext.
type Policy map[string][]identity.Role

// insecureCaller is every caller of a node that runs without TLS.
var insecureCaller = &access.Caller{Insecure: true}

// caller authenticates a gRPC request: the identity its verified TLS
// client certificate names, else the identity its bearer token names in
// the tokens file, else none (Unauthenticated).
func (n *Node) caller(ctx context.Context) (*access.Caller, error) {
	var cert *x509.Certificate
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
			cert = ti.State.VerifiedChains[0][0]
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	c, err := n.authenticate(cert, md.Get(wire.AuthHeader))
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "node: "+err.Error())
	}
	return c, nil
}

// HTTPCaller authenticates an HTTP request as the gRPC ports do (the same
// certificates, tokens file and order): the identity its verified TLS
// client certificate names, else the one its "Authorization: Bearer
// <token>" names in the tokens file. The error says what was missing or
// wrong (an HTTP server answers it with 401). On a node without TLS every
// request is the insecure caller.
func (n *Node) HTTPCaller(r *http.Request) (*access.Caller, error) {
	var cert *x509.Certificate
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		cert = r.TLS.VerifiedChains[0][0]
	}
	return n.authenticate(cert, r.Header.Values("Authorization"))
}

// authenticate is caller's and HTTPCaller's rule: a verified client
// certificate of this cluster, else the first authorization value as a
// bearer token of the tokens file.
func (n *Node) authenticate(cert *x509.Certificate, auth []string) (*access.Caller, error) {
	if n.creds == nil {
		return insecureCaller, nil
	}
	if cert != nil {
		id, err := identity.FromCert(cert)
		if err != nil {
			return nil, errors.New("the client certificate names no identity: " + err.Error())
		}
		if id.Cluster != n.creds.Cluster() {
			return nil, fmt.Errorf("%s belongs to cluster %q, not %q", id, id.Cluster, n.creds.Cluster())
		}
		return &access.Caller{ID: id}, nil
	}
	for _, v := range auth {
		tok, ok := strings.CutPrefix(v, "Bearer ")
		if !ok {
			return nil, errors.New(`the authorization header must be "Bearer <token>"`)
		}
		if c, ok := n.tokens.Token(tok); ok {
			return c, nil
		}
		return nil, errors.New("the bearer token is not valid")
	}
	return nil, errors.New("a client certificate or a bearer token is required")
}

// authorize authenticates a call of method and checks the policy.
func (n *Node) authorize(ctx context.Context, method string) (*access.Caller, error) {
	c, err := n.caller(ctx)
	if err != nil {
		n.metrics.denied.WithLabelValues(method, "unauthenticated").Inc()
		return nil, err
	}
	if c.Insecure {
		return c, nil
	}
	if !slices.Contains(n.spec.Policy[method], c.ID.Role) {
		n.metrics.denied.WithLabelValues(method, "permission").Inc()
		return nil, status.Errorf(codes.PermissionDenied, "node: %s may not call %s", c.ID, method)
	}
	return c, nil
}

// unaryAuth is the unary server interceptor: the handler runs with the
// caller in its context, or not at all.
func (n *Node) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	c, err := n.authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	if err := badUnary(req); err != nil {
		return nil, err
	}
	return handler(access.NewContext(ctx, c), req)
}

// streamAuth is the stream server interceptor, checked before the handler
// reads a single message.
func (n *Node) streamAuth(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	c, err := n.authorize(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &callerStream{ServerStream: checkedStream{ss}, ctx: access.NewContext(ss.Context(), c)})
}

// callerStream is a server stream whose context carries the caller.
type callerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *callerStream) Context() context.Context { return s.ctx }

// Perms returns what caller may do now: its rights in the tokens file as
// the file reads at this moment (a SIGHUP that narrows or removes an entry
// applies to the next request, also on streams opened before), everything
// on a node without TLS, nothing for a nil caller.
func (n *Node) Perms(c *access.Caller) access.Perms {
	switch {
	case c == nil:
		return access.Perms{}
	case c.Insecure:
		return access.AllPerms
	}
	return n.tokens.Perms(c.ID)
}

// adminAuth lets an operator reach admin HTTP's /api and /debug: a request
// with the --admin-token, or, on a node with TLS, one with an admin
// certificate or an admin's token from the tokens file. A node without TLS
// and without --admin-token leaves them open. A request without valid
// credentials is refused as unauthenticated (401); one whose certificate
// or token proves an identity that is not an operator, as forbidden (403).
func (n *Node) adminAuth(r *http.Request) error {
	if n.creds == nil && n.cfg.AdminToken == "" {
		return nil
	}
	// An admin certificate lets the request in whatever token it carries;
	// an operator's token whatever certificate.
	var proven *identity.ID
	if n.creds != nil && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		if id, err := identity.FromCert(r.TLS.VerifiedChains[0][0]); err == nil && id.Cluster == n.cfg.Cluster {
			if id.Role == identity.RoleAdmin {
				return nil
			}
			proven = &id
		}
	}
	tok, err := admin.Token(r)
	if err != nil {
		return err
	}
	if admin.TokenIs(r, n.cfg.AdminToken) {
		return nil
	}
	if n.creds == nil {
		return errors.New("admin token required (Authorization: Bearer <token>)")
	}
	if tok != "" {
		c, ok := n.tokens.Token(tok)
		if !ok {
			return errors.New("the bearer token is not valid")
		}
		if c.ID.Role == identity.RoleAdmin {
			return nil
		}
		proven = &c.ID
	}
	if proven != nil {
		return fmt.Errorf("%w: %s is not an operator (an admin certificate or an admin token from the tokens file is required)", admin.ErrForbidden, *proven)
	}
	return errors.New("an operator is required: an admin certificate, or an admin token from the tokens file (Authorization: Bearer <token>)")
}
