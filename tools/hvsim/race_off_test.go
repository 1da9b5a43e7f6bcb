//go:build !race

package main

// testRate is the stream rate of the in-process runs.
const testRate = "2000"

const raceEnabled = false
