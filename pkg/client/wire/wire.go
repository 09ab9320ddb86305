// Package wire holds what Strata's gRPC API agrees on beyond its .proto
// files (pkg/proto): the largest message either side accepts, how a
// bearer token travels, and how a push for several subscribers is read
// and acked. The SDK and the nodes both use it, so neither can drift from
// the other.
package wire

// MaxMessageBytes bounds one gRPC message a Strata node or client accepts
// in an answer (grpc-go's default is 4 MiB): a datum read carries whole
// publishers of at most record.MaxPublisherBytes each, a push a service's
// whole list. What a server accepts in a request is each port's own,
// smaller limit (the nodes' admission limits); large things are chunked
// below both: snapshots stream in ~1 MiB pieces.
const MaxMessageBytes = 64 << 20
