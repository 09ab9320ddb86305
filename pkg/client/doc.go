// Package client is the Go client of Strata, a distributed service
// registry: services publish records under a data ID, and subscribers are
// pushed the whole current list of records whenever it changes, within a
// fraction of a second.
//
// # Connecting
//
// New returns at once and connects in the background, to a session node
// named by WithSessions or discovered from the meta nodes with WithMeta:
//
//	c, err := client.New(ctx, client.WithMeta("meta-1:9615", "meta-2:9615"), client.WithZone("az1"))
//	if err != nil { ... }
//	defer c.Close()
//
// A cluster runs with TLS by default, and a client proves who it is with a
// client certificate or a token. WithCredentials takes the files (the
// cluster's CA, the client's certificate and key; CredentialsDir finds
// them in a directory `registryctl certs init` wrote, such as make run's
// run/certs) and checks that every server is a session or meta node of the
// cluster:
//
//	client.WithCredentials(client.CredentialsDir("run/certs", "dev"))
//
// With a token instead (WithToken), the credentials need only the CA. A
// request the client's identity has no right to fails with
// ErrPermissionDenied.
//
// A client holds one stream to one session. When the session fails, or
// asks the client to move because it holds more than its share of clients,
// the client connects to another (with jittered exponential backoff while
// none answers) and replays every live publication and subscription with
// the same IDs and versions, so the cluster sees no change. Requests made
// while disconnected wait for the connection, bounded by their contexts.
//
// A session that freezes (a stopped process, a stalled link) neither
// breaks the connection nor answers. The client heartbeats (at the
// session's interval, or WithHeartbeat's if shorter), every heartbeat is
// answered, and a stream that hears nothing for WithMissedHeartbeats
// intervals (3 by default) is declared dead: the client moves to another
// session make-before-break, replaying everything there before it drops
// the old stream, while subscriptions keep serving their last snapshot.
// gRPC keepalive (WithKeepalive) checks the transport underneath.
//
// # Publishing
//
//	p, err := c.Publish(ctx, "com.example.Echo", []byte("10.0.0.1:8080"), client.WithGroup("RPC"))
//	err = p.Update(ctx, []byte("10.0.0.1:8081"))
//	err = p.Unpublish(ctx)
//
// Publish, Update and Unpublish return once a session has stored the
// change. A publication lives until Unpublish or Close; if the client dies
// instead, the session removes it after its disconnect grace period.
//
// # Subscribing
//
//	s, err := c.Subscribe(ctx, "com.example.Echo", client.WithGroup("RPC"))
//	snap, err := s.Next(ctx) // the current list (possibly empty), then each change
//	for snap := range s.Updates() { ... } // the same as a channel, closed by s.Close
//
// Snapshots carry the full list and an increasing Version. A subscription
// never goes back to an older version, never reports an empty list because
// the connection dropped (it keeps the last snapshot and waits), and merges
// changes that arrive faster than the caller reads into the newest. With
// WithCacheDir, each subscription's last snapshot is kept on disk, and a
// client that starts while no session is reachable serves it (marked
// Cached) until live data arrives.
//
// # Errors
//
// Refused requests return errors that match, with errors.Is, one of
// ErrInvalidArgument, ErrTooLarge, ErrRateLimited, ErrUnauthenticated,
// ErrPermissionDenied or ErrClosed; an *Error carries the session's gRPC code and message. Sizes
// and IDs are checked before anything is sent, with the limits of package
// record (record.MaxValueBytes, record.MaxDataIDBytes, ...), which the
// servers enforce too.
//
// # Module
//
// The SDK is a module of its own, github.com/strata-registry/strata/pkg/client:
// it pulls in grpc, protobuf and the generated protocol
// (github.com/strata-registry/strata/pkg/proto), and no server code.
// Packages record, identity, tlsconf and wire hold what it shares with the
// servers. WithDialOptions adds gRPC dial options of one's own
// (interceptors, stats handlers).
//
// # Beyond raw records
//
// Package discovery stores service instances (address, weight, zone,
// metadata) as records, and package resolver plugs Strata into grpc-go as
// a resolver for strata:///service targets.
package client
