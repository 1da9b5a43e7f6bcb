package netvsc

// Stats are the device's counters and resource accounting for the current
// synthetic attachment (they restart after a re-attach).
type Stats struct {
	// Transmit.
	TxPackets, TxBytes       uint64
	TxSectionSends           uint64 // copied into a send-buffer section (in-band)
	TxGPADirectSends         uint64 // copied into a bounce slot (GPA direct)
	TxRingFull, TxNoResource uint64 // back-pressure events
	TxTooBig                 uint64 // frames larger than a bounce slot, dropped
	TxCompletions            uint64
	TxBadCompletions         uint64 // ids naming no outstanding send (ignored)
	TxFailedCompletions      uint64 // host status ≠ success (resources freed anyway)
	// Resources in use right now.
	SectionsInUse, SectionsTotal int
	BounceInUse, BounceTotal     int
	TxOutstanding                int

	// Receive.
	RxPackets, RxBytes, RxRanges, RxXferPackets uint64
	RxControl, RxIndications                    uint64
	RxBadPackets, RxBadRanges, RxNoBuffer       uint64
	RxUnknown                                   uint64
	RxCompletionsPending                        int
	RxCompletionsDropped                        uint64
	// RxQueuePackets counts the packets received on each channel (queue
	// 0 is the primary; RxPackets is their sum).
	RxQueuePackets []uint64

	// NetworkChanges counts the host's NETWORK_CHANGE indications that
	// cycled the carrier (NetworkChangeDelay down, then up).
	NetworkChanges uint64

	// Per-path counters (Linux vf_tx_*/vf_rx_*), kept for the device's
	// life: Tx*/Rx* above are the synthetic path.
	VFTxPackets, VFTxBytes uint64 // sent through the transparent VF
	VFTxBusy               uint64 // batches the VF did not fully take (back-pressure)
	VFTxFallback           uint64 // packets a departed VF left, sent synthetic instead
	VFRxPackets, VFRxBytes uint64 // received on the transparent VF, relabelled as hn's
	RxSynthWhileVF         uint64 // synthetic receive while transmit was on the VF
	RxRelabelledToVF       uint64 // non-transparent: synthetic receive handed to the VF
}

// Stats returns a snapshot of the counters.
func (d *Device) Stats() Stats {
	d.dataMu.RLock()
	s := d.syn
	d.dataMu.RUnlock()
	v := &d.vfm.st
	st := Stats{VFTxPackets: v.txPackets.Load(), VFTxBytes: v.txBytes.Load(), VFTxBusy: v.txBusy.Load(),
		VFTxFallback: v.txFallback.Load(), VFRxPackets: v.rxPackets.Load(), VFRxBytes: v.rxBytes.Load(),
		RxSynthWhileVF: v.synthRxWhileVF.Load(), RxRelabelledToVF: v.rxToVF.Load(), NetworkChanges: d.netchg.count.Load()}
	if s == nil {
		return st
	}
	t := &s.tx
	t.mu.Lock()
	st.TxPackets, st.TxBytes = t.st.packets, t.st.bytes
	st.TxSectionSends, st.TxGPADirectSends = t.st.sectionSends, t.st.gpaSends
	st.TxRingFull, st.TxNoResource, st.TxTooBig = t.st.ringFull, t.st.noResource, t.st.tooBig
	st.TxCompletions, st.TxBadCompletions, st.TxFailedCompletions = t.st.completions, t.st.badCompletions, t.st.failedCompletions
	st.SectionsInUse, st.SectionsTotal = t.secInUse, int(s.secCount)
	st.BounceTotal = len(t.bounceRng)
	st.BounceInUse = st.BounceTotal - len(t.bounceFree)
	if t.descs != nil {
		st.TxOutstanding = t.outstanding()
	}
	t.mu.Unlock()

	rxs := []*rxState{&s.rx}
	for _, q := range s.rss.subs {
		rxs = append(rxs, &q.rx)
	}
	for _, r := range rxs {
		st.RxQueuePackets = append(st.RxQueuePackets, r.st.packets.Load())
		st.RxPackets += r.st.packets.Load()
		st.RxBytes += r.st.bytes.Load()
		st.RxRanges += r.st.ranges.Load()
		st.RxXferPackets += r.st.xferPackets.Load()
		st.RxControl += r.st.controlMsgs.Load()
		st.RxIndications += r.st.indications.Load()
		st.RxBadPackets += r.st.badPackets.Load()
		st.RxBadRanges += r.st.badRanges.Load()
		st.RxNoBuffer += r.st.noBuffer.Load()
		st.RxUnknown += r.st.unknown.Load()
		st.RxCompletionsDropped += r.st.compDropped.Load()
		r.compMu.Lock()
		st.RxCompletionsPending += len(r.comp)
		r.compMu.Unlock()
	}
	return st
}
