//go:build !race

package netvsc_test

// accountingPackets is how many packets TestAccountingMillionPackets
// transmits: the acceptance figure, a million.
const accountingPackets = 1_000_000
