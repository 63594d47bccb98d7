// Package bench is the load generator behind `sessiond bench`: it runs a
// scenario (login, refresh, revoke, checks, revocation watch, a mix, or an
// adapter for another system) with a number of concurrent clients for a
// duration or a number of operations, closed-loop or at a fixed rate, and
// summarises what a user of the cluster sees: throughput, latency
// percentiles from an HDR histogram, and errors by code.
//
// The package knows sessiond's public API only (the generated Connect
// clients), never its internals, so it measures the cluster black-box as a
// user would. Other systems (etcd, Redis, a bare Raft counter) plug in as a
// Scenario from outside the product's module (tools/benchbase), so that the
// same runner and the same summary measure them.
package bench
