//go:build race

package main

// testRate is the stream rate of the in-process runs. Under the race
// detector on a shared two-core machine the guest can stall for a second
// or more; at this rate such a stall still fits in the VF's receive queue
// (512 buffers) and hn's receive buffer, so what the tests assert is the
// migration's loss, not an overloaded guest's.
const testRate = "300"

const raceEnabled = true
