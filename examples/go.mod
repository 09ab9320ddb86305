module github.com/strata-registry/strata/examples

go 1.26.0

require (
	github.com/strata-registry/strata/pkg/client v0.0.0
	google.golang.org/grpc v1.85.0
)

require (
	github.com/strata-registry/strata/pkg/proto v0.0.0 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

// The examples build against the tree's SDK; a program of your own
// requires a released pkg/client instead.
replace (
	github.com/strata-registry/strata/pkg/client => ../pkg/client
	github.com/strata-registry/strata/pkg/proto => ../pkg/proto
)
