//go:build race

package netvsc_test

// accountingPackets is how many packets TestAccountingMillionPackets
// transmits. The race detector slows the whole in-process stack several
// times over, so under -race the test runs on a tenth of the acceptance
// figure to stay well under a minute; the normal `go test` run keeps the
// full million.
const accountingPackets = 100_000
