package meta

import (
	"errors"
	"fmt"

	"github.com/strata-registry/strata/internal/node"
)

// Errors a meta node returns. The service maps each to a gRPC code in
// toStatus; messages carry the "meta:" prefix.
var (
	ErrNotLeader      = errors.New("meta: not leader")
	ErrNoLeader       = errors.New("meta: no leader elected")
	ErrNotInitialized = errors.New("meta: cluster not initialized yet")
	ErrInvalid        = errors.New("meta: invalid argument")
	ErrDenied         = errors.New("meta: permission denied")
	ErrNotIssuer      = errors.New("meta: not an issuer")
	ErrDuplicateNode  = errors.New("meta: node id already registered with another address")
	ErrUnknownNode    = errors.New("meta: node not registered")
	ErrStaleTable     = errors.New("meta: slot table changed since it was read")
	ErrShuttingDown   = errors.New("meta: shutting down")
	ErrLeaderNotReady = errors.New("meta: leader is catching up; retry")
)

// NotLeaderError is returned by a follower that cannot forward; Leader is the
// leader's gRPC address when known.
type NotLeaderError struct {
	Leader string
}

func (e *NotLeaderError) Error() string {
	if e.Leader == "" {
		return ErrNoLeader.Error()
	}
	return fmt.Sprintf("%s (leader at %s)", ErrNotLeader, e.Leader)
}

// Unwrap lets errors.Is(err, ErrNotLeader) match.
func (e *NotLeaderError) Unwrap() error {
	if e.Leader == "" {
		return ErrNoLeader
	}
	return ErrNotLeader
}

const (
	maxNodeIDLen  = node.MaxNodeIDBytes
	maxZoneLen    = 64
	maxAddressLen = 256
)

func permissionDenied(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrDenied, fmt.Sprintf(format, args...))
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// validNodeID is the rule every node id follows (node.ValidNodeID).
func validNodeID(id string) error { return node.ValidNodeID(id) }
