// Package testbed builds the simulated Hyper-V host and the guest stack in
// one process and runs hvsim's live-migration scenario on them. It is a
// tool package: it composes both sides (the host's VMBus server, netvsp,
// switch and vPCI bus; the guest's VMBus client, hn driver, vPCI bus driver
// and a gVisor stack), which the libraries themselves never do.
//
// A remote station on the host's switch streams numbered frames to the
// guest and receives the guest's stream (stream.go), and runs a gVisor
// stack for two TCP transfers checked by sha256 (tcp.go). While they run,
// the host's migration driver (run.go) performs live migrations as a
// Hyper-V host orders them (spec/openvmm-notes.md §2.4 C and F,
// spec/vf-modes.md A.9): switch the data path back to synthetic and
// withdraw the VF association, eject the VF from the vPCI bus (or
// surprise-remove it), run on the synthetic path, offer a fresh VF and
// wait until the guest has taken it back.
//
// Accounting: every stream frame carries a sequence number; receivers
// record the delivery time of each and count duplicates and corrupt
// payloads; an observer on the guest's VF interface marks the frames that
// crossed it, which gives the per-path counts. The report (report.go)
// derives loss, duplication and, per switch-over, the longest interval in
// its window during which no frame was delivered; plot.go draws delivered
// frames per path over time with gonum/plot.
//
// Timing is real (the traffic is real); the seed makes payloads and the
// migration schedule repeatable.
package testbed
