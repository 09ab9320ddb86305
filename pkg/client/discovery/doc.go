// Package discovery is service discovery over Strata: servers register
// instances of a service (address, weight, zone, metadata), and callers
// watch the service and are pushed its whole instance list whenever it
// changes.
//
// It is a thin layer over package client. An instance is a record whose
// data ID is the service name and whose value is the instance in JSON (see
// Instance for the format), so a Registration has the life of a
// client.Publication (kept across reconnects, removed by Deregister, by
// the Client's Close, or by the session when the process dies) and a
// Watcher the guarantees of a client.Subscription (versions only go up,
// a lost connection never shows as an empty list, WithCacheDir serves the
// last list while no session answers).
//
// # Registering
//
//	c, err := client.New(ctx, client.WithMeta("meta-1:9615"), client.WithZone("az1"))
//	if err != nil { ... }
//	defer c.Close()
//	d := discovery.New(c)
//
//	reg, err := d.Register(ctx, "com.example.Echo", discovery.Instance{Addr: "10.0.0.1:8080", Weight: 10})
//	err = reg.Update(ctx, discovery.Instance{Addr: "10.0.0.1:8080", Weight: 20}) // move, reweigh
//	err = reg.Drain(ctx) // no new traffic, still registered
//	err = reg.Deregister(ctx)
//
// Register checks the instance first (Addr is host:port with a numeric
// port; Weight is 0..MaxWeight, 0 meaning DefaultWeight) and returns
// errors matching client.ErrInvalidArgument for bad ones. An empty Zone
// is read as the registering client's zone (client.WithZone).
//
// # Draining and disabling
//
// An instance's State takes it out of rotation without unpublishing it:
//
//	StateServing  (the zero value)  takes new traffic
//	StateDraining                   finishes what it has, gets nothing new: the Picker
//	                                skips it, the gRPC resolver lists it so the balancer
//	                                keeps its connection but sends it no new RPC
//	StateDisabled                   gets nothing: the Picker skips it, the resolver
//	                                leaves it out (gRPC closes its connections)
//
// Set it with Registration.Drain, Undrain or SetState (or in the Instance
// given to Register and Update). The record carries it as "state" (left
// out when serving, so older readers and writers agree; the format stays
// version 1). A reader that meets a state it does not know, written by a
// newer client, keeps it in Instance.State and treats it as not serving:
// State.Serving is false, the Picker and the balancer send it nothing
// new, the resolver lists it as it lists a draining one. Weight 0 does not
// mean "no traffic": in version 1 records it has always meant
// DefaultWeight, so State is the one way to stop new traffic.
//
// # Watching
//
//	w, err := d.Watch(ctx, "com.example.Echo")
//	if err != nil { ... }
//	defer w.Close()
//	for set := range w.Updates() { // or set, err := w.Next(ctx) in a loop
//		for _, inst := range set.Instances { ... } // sorted by address
//	}
//
// Records under the service's key that are not instances (raw values some
// other client published) are skipped, counted in Set.Skipped, and logged
// (WithLogger); they never fail the watch.
//
// # Picking
//
// A Picker chooses one instance per call, for callers that dial on their
// own (HTTP, a raw TCP protocol); gRPC callers use the resolver and
// balancer packages instead.
//
//	p, err := discovery.NewPicker(discovery.WithPreferredZone("az1"))
//	if err != nil { ... }
//	go func() { _ = p.Follow(ctx, w) }() // every Set of the Watcher w, until ctx ends or w closes
//	inst, err := p.Pick(ctx)             // waits only for the first Set
//	if errors.Is(err, discovery.ErrNoInstance) { ... } // nothing is serving
//	err = call(inst.Addr)
//	p.Report(inst, err) // nil, or an error that blames the instance
//
// Pick draws at random, each instance's chance in proportion to its
// Weight, among the serving instances (draining, disabled and unknown
// states are skipped; of two registrations of one address, one counts).
// With WithPreferredZone it draws from that zone's available instances,
// and from every zone only when the zone has none available (no minimum
// share: one local instance takes all the local traffic).
//
// Outlier ejection: DefaultEjectAfter (3) failures in a row (Report with
// an error; a success resets the count) eject the instance for
// DefaultEjectionTime (30 s), doubling on each repeat up to
// DefaultMaxEjectionTime (5 min); each base interval of service after a
// return counts one repeat down. At most DefaultMaxEjectedShare (half) of
// the serving instances are ejected at once, so a lone instance never is:
// a caller whose own network fails keeps trying its instances rather than
// emptying the list. All of these are options; WithClock and WithRandSeed
// make a Picker deterministic in tests. The Picker starts no goroutine,
// and its memory follows the number of serving addresses.
//
// # Groups
//
// The client.RegisterOption arguments of Register and Watch select the
// rest of the record key: a watcher sees the registrations made with the
// same client.WithGroup and client.WithInstanceID, and client.WithScope
// narrows a watch to the client's zone or datacenter.
//
// Package resolver, next to this one, feeds a Watch into grpc-go, so a
// gRPC client can dial "strata:///com.example.Echo".
package discovery
