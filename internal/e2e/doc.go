// Package e2e holds Strata's end-to-end tests: they run a cluster of real
// processes (the meta, data and session binaries, built from this module
// with the Makefile's flags) on loopback and drive it through pkg/client,
// killing processes with signals to check what clients see.
//
// Unlike internal/testcluster, which runs every node inside the test
// process, these tests cover what only real processes have: flag parsing,
// the environment, signal handling, listeners bound from 127.0.0.1:0 and
// the addresses each node logs and advertises, and a crash that closes
// every socket at once. Every process binds port 0 and the tests read the
// bound addresses from its "node started" log line (JSON), so no port is
// ever guessed.
//
// The tests carry the e2e build tag, so `make test` (unit and in-process
// cluster tests) leaves them out; `make e2e` runs them, and so does CI.
// They need the go command on PATH (to build the binaries once per test
// binary) and skip under -short. The package has no non-test code.
package e2e
