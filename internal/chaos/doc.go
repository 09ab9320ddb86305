// Package chaos runs a Strata cluster of real processes under a seeded,
// randomized schedule of faults while clients (pkg/client) keep publishing
// and subscribing, records what every client did and saw, and checks the
// history against the fault model of docs (DESIGN.md "Fault model"):
//
//  1. the final snapshot of every subscriber holds exactly each live
//     publication's last acknowledged value;
//  2. a subscription's versions never go back, and no publisher's value
//     ever goes back to an older one (also under a higher version);
//  3. no live publication vanishes from a snapshot once it was in one;
//  4. after every fault (and after the last) every subscriber converges
//     within a bound;
//  5. one version of a key has one content, at every subscriber.
//
// The pieces: Cluster (processes, their logs and addresses), Net (where
// nodes listen and how links between them are cut: loopback, or one
// network namespace per node), Schedule (the faults a seed gives),
// Load (publishers and subscribers), History (what they did and saw, kept
// compactly) and Check (the verdict). Run ties them together; cmd/chaos
// and `make chaos` run it.
package chaos
