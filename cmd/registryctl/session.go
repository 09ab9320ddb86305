package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/pflag"

	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/record"
)

// keyFlags are the flags of the data-plane commands (pub, sub, get): the
// parts of the key besides the data ID, and the client's identity.
type keyFlags struct {
	instanceID string
	group      string
	zone       string
	verbose    bool
}

// keyPartFlags registers --instance-id and --group, the parts of a key
// besides its data ID, for every command that names a key.
func keyPartFlags(f *pflag.FlagSet, instanceID, group *string) {
	f.StringVar(instanceID, "instance-id", "", "instance ID part of the dataInfoID (default "+record.DefaultInstanceID+")")
	f.StringVar(group, "group", "", "group part of the dataInfoID (default "+record.DefaultGroup+")")
}

func (k *keyFlags) register(f *pflag.FlagSet) {
	keyPartFlags(f, &k.instanceID, &k.group)
	f.StringVar(&k.zone, "zone", "", "the client's zone: stamped on what it publishes, selects publishers for --scope zone")
	f.BoolVarP(&k.verbose, "verbose", "v", false, "log the client's connection events (connects, reconnects, moves) to stderr")
}

// parts returns the key's data ID, instance ID and group: arg may be a bare
// data ID (with --instance-id and --group) or a whole dataInfoID, as for
// slot-of.
func (k *keyFlags) parts(arg string) (key, dataID, instanceID, group string, err error) {
	if key, err = dataInfoID(arg, k.instanceID, k.group); err != nil {
		return "", "", "", "", err
	}
	dataID, instanceID, group, err = record.ParseDataInfoID(key)
	return key, dataID, instanceID, group, err
}

// sessionClient is a data-plane command's SDK client, with what it needs to
// explain a failure to reach the cluster. Close it when done.
type sessionClient struct {
	*client.Client
	// where names the addresses the client tries, for errors.
	where string
	g     *globals
}

// newClient starts an SDK client for the --session addresses or, when
// --session is empty, for the sessions the --meta nodes list. It connects
// in the background; requests wait for the connection.
func (g *globals) newClient(ctx context.Context, k *keyFlags, stderr io.Writer) (*sessionClient, error) {
	opts := []client.Option{
		client.WithZone(k.zone), client.WithToken(g.token), client.WithDialTimeout(g.timeout),
	}
	if k.verbose {
		opts = append(opts, client.WithLogger(slog.New(slog.NewTextHandler(stderr, nil))))
	}
	where := strings.Join(g.session, ",")
	if len(g.session) > 0 {
		opts = append(opts, client.WithSessions(g.session...))
	} else {
		opts = append(opts, client.WithMeta(g.meta...))
		where = "the sessions listed by meta at " + strings.Join(g.meta, ",")
	}
	if cc := g.clientCreds(); cc != nil {
		opts = append(opts, client.WithCredentials(*cc))
	}
	c, err := client.New(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return &sessionClient{Client: c, where: where, g: g}, nil
}

// explain wraps err, the failure of what, in an error an operator can act
// on: a refused client points at --client-token, and a timeout before any
// session answered names the addresses tried and why the last attempt
// failed, rather than "context deadline exceeded".
func (sc *sessionClient) explain(what string, err error) error {
	if errors.Is(err, client.ErrUnauthenticated) {
		return fmt.Errorf("%s: the session refused the client (check --token, --credentials or --tls-cert): %w", what, err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	if s := sc.Session(); s != "" {
		return fmt.Errorf("%s: no answer from session %s within %v", what, s, sc.g.timeout)
	}
	// Ask the client why it is not connected: its error names the last
	// attempt's failure.
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	why := sc.WaitConnected(expired)
	if errors.Is(why, client.ErrUnauthenticated) {
		return fmt.Errorf("%s: the session refused the client (check --token, --credentials or --tls-cert): %w", what, why)
	}
	return fmt.Errorf("%s: no session reachable at %s within %v: %v", what, sc.where, sc.g.timeout, why)
}
