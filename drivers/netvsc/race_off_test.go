//go:build !race

package netvsc_test

// raceEnabled: the race detector changes allocation counts.
const raceEnabled = false
