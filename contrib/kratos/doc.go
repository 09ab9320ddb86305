// Package strata is a Kratos (github.com/go-kratos/kratos/v2) registry
// over Strata: Registry implements Kratos' registry.Registrar and
// registry.Discovery on top of the Strata SDK's discovery layer
// (github.com/strata-registry/strata/pkg/client/discovery), so a Kratos
// server registers with
//
//	c, err := client.New(ctx, client.WithMeta("meta-1:9615"), client.WithCredentials(...))
//	if err != nil { ... }
//	defer c.Close()
//	r := strata.New(discovery.New(c))
//	app := kratos.New(kratos.Name("com.example.Echo"), kratos.Server(srv), kratos.Registrar(r))
//
// and a Kratos client dials "discovery:///com.example.Echo" with
// grpc.WithDiscovery(r).
//
// It is a module of its own (github.com/strata-registry/strata/contrib/kratos),
// so users of the SDK alone never pull in Kratos, and users of the adapter
// pull in no Strata server code.
//
// # Mapping
//
// A Kratos ServiceInstance{ID, Name, Version, Metadata, Endpoints} is
// registered as one Strata discovery.Instance per endpoint, under the data
// ID Name:
//
//	Addr      the endpoint's host:port ("grpc://10.0.0.1:9000?isSecure=false" -> 10.0.0.1:9000)
//	Weight    Metadata["weight"] when it is a whole number from 1 to discovery.MaxWeight
//	          (the key Kratos' own balancers read), else discovery.DefaultWeight
//	Zone      empty: the registering client's zone (client.WithZone)
//	Metadata  the ServiceInstance's Metadata as given, plus MetadataID (the Kratos ID),
//	          MetadataVersion (its Version, when not empty) and MetadataEndpoint (the
//	          endpoint URL as given)
//
// Keys starting with MetadataPrefix ("kratos.") are the adapter's: Register
// refuses user metadata that uses them (client.ErrInvalidArgument) rather
// than letting them collide. The metadata is copied into every endpoint's
// record, and each record is limited to 1 MiB (client.ErrTooLarge).
// Strata readers that are not Kratos (the SDK's resolver and Picker, other
// languages) see every endpoint as an instance; when a service mixes
// protocols (gRPC and HTTP endpoints), they tell them apart by the scheme
// of MetadataEndpoint.
//
// Watchers (Watch, GetService) turn the service's instances back into
// ServiceInstances: the records carrying MetadataID are grouped by it, each
// group one ServiceInstance whose Endpoints are the group's endpoint URLs
// and whose Version and Metadata are those registered (the adapter's keys
// taken out). Instances other clients registered through the SDK alone
// (no MetadataID) are listed too, so a Kratos client can call servers that
// do not use Kratos: each becomes a ServiceInstance with ID its address,
// no Version, its metadata plus "weight" (its Strata weight, unless the
// metadata has that key), and the endpoints grpc://ADDR and grpcs://ADDR.
// Such a record says nothing about TLS, so, as with the SDK's own gRPC
// resolver, the dialer's credentials decide; a Kratos HTTP client, which
// looks for http:// and https:// endpoints, skips them.
//
// # States
//
// Only serving instances are listed. Kratos has no notion of an endpoint
// that keeps its connections but takes no new calls, so a draining
// instance (discovery.StateDraining, or `registryctl drain`) is left out
// like a disabled one: the Kratos client's balancer stops sending it new
// calls, and gRPC lets the calls already on its connection finish as it
// closes it. An endpoint that is out is left out of its ServiceInstance;
// a ServiceInstance with no endpoint left is left out. Kratos' gRPC
// resolver ignores an empty list (it keeps the last addresses it had), so
// draining or deregistering every instance of a service does not stop a
// Kratos client's calls to the last ones.
//
// # Registering twice, deregistering
//
// Register of an ID this Registry has registered already updates it:
// endpoints it no longer lists are deregistered, new ones registered,
// changed ones updated (new ones first, removed ones last, so a watcher
// never sees the instance without an endpoint it keeps). Deregister
// removes every endpoint this Registry registered for that name and ID,
// whatever Endpoints it is given. A multi-endpoint update is not atomic: a
// watcher may briefly see some endpoints with the old metadata and some
// with the new.
package strata
