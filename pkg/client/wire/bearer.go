package wire

import (
	"context"

	"google.golang.org/grpc/credentials"
)

// AuthHeader is the gRPC metadata key that carries a bearer token.
const AuthHeader = "authorization"

// Bearer returns per-RPC credentials that send token as
// "authorization: Bearer <token>" with every call. They require transport
// security: grpc-go refuses to send them over a plaintext connection, so a
// token never leaves the process in the clear. Safe for concurrent use.
func Bearer(token string) credentials.PerRPCCredentials {
	return bearer(token)
}

// bearer is the token Bearer sends.
type bearer string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{AuthHeader: "Bearer " + string(b)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (bearer) RequireTransportSecurity() bool { return true }
