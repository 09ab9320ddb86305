module github.com/strata-registry/strata/pkg/client

go 1.26.0

require (
	github.com/strata-registry/strata/pkg/proto v0.0.0
	go.uber.org/goleak v1.3.0
	google.golang.org/grpc v1.85.0
	google.golang.org/protobuf v1.36.12
)

require (
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
)

// Builds in this repository use the tree's copy of the protocol. Where the
// SDK is a dependency this line is ignored: a release requires a tagged
// pkg/proto above.
replace github.com/strata-registry/strata/pkg/proto => ../proto
