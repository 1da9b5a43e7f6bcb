package mlxdev

import (
	"fmt"
	"time"
)

// DropReason says why a frame was dropped.
type DropReason uint8

const (
	DropNone        DropReason = iota
	DropOutOfBuffer            // rx_out_of_buffer: the RQ had no posted WQE
	DropFilter                 // the vport filter refused the destination
	DropMTU                    // larger than the vport MTU
	DropLinkDown               // vport state DOWN
	DropRemoved                // surprise removal
	DropNotReady               // device not RUNNING, no TIR, or RQ not RDY
	DropNoSteering             // compat-mode flow table miss
	DropRxError                // RX error CQE (LOCAL_LENGTH, LOCAL_PROT)
	DropCQError                // completion queue in error
	DropNoWire                 // no Config.Wire
	DropTxOversize             // frame larger than Config.TxFrameSize
	DropTxError                // the WQE failed (error CQE)
	DropMalformed              // shorter than an Ethernet header
	NumDropReasons
)

var dropNames = [NumDropReasons]string{"none", "rx_out_of_buffer", "filter", "mtu", "link_down", "removed",
	"not_ready", "no_steering", "rx_error", "cq_error", "no_wire", "tx_oversize", "tx_error", "malformed"}

func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropNames[r]
	}
	return fmt.Sprintf("drop(%d)", uint8(r))
}

// Stats are the device's counters (a snapshot from Device.Stats).
type Stats struct {
	TxPackets, TxBytes uint64 // frames handed to the wire
	TxWQEs             uint64 // send WQEs completed without error
	TxLSOSegments      uint64
	TxCsumUnsupported  uint64 // checksum flags on a frame that is not IP/TCP/UDP
	RxPackets, RxBytes uint64 // frames placed in an RQ
	RxDrops, TxDrops   [NumDropReasons]uint64

	RxUnicast, RxMulticast, RxBroadcast Traffic
	TxUnicast, TxMulticast, TxBroadcast Traffic

	Commands          uint64 // commands executed (any status)
	CommandFailures   uint64 // commands with a nonzero status
	DeliveryErrors    uint64 // entries completed with a nonzero delivery status
	SpuriousDoorbells uint64 // doorbell bits for entries not owned by hardware
	LateDoorbells     uint64 // SQ doorbells for WQEs already run (delivered after a later doorbell)

	Interrupts           uint64 // MSI-X messages sent
	InterruptsPending    uint64 // raised while masked (left in the PBA)
	InterruptsSuppressed uint64 // raised with MSI-X or bus mastering off

	EQEs, CQEs, ErrorCQEs uint64
	Violations            int // including those the log no longer holds
}

// Traffic is a packet and byte count.
type Traffic struct{ Packets, Bytes uint64 }

func (t *Traffic) add(n int) { t.Packets++; t.Bytes += uint64(n) }

// RxDropped and TxDropped return the total drops.
func (s *Stats) RxDropped() (n uint64) {
	for _, v := range s.RxDrops {
		n += v
	}
	return n
}

func (s *Stats) TxDropped() (n uint64) {
	for _, v := range s.TxDrops {
		n += v
	}
	return n
}

// Stats returns a snapshot of the counters.
func (d *Device) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.stats
	s.Violations = len(d.violations) + d.lostViol
	return s
}

// ViolationKind classifies driver protocol violations (§7.12).
type ViolationKind uint8

const (
	VioBadRegisterWrite ViolationKind = iota + 1 // write to a read-only or reserved register
	VioCmdq                                      // command queue misuse (unconfigured, initializing, bus master off)
	VioDMA                                       // DMA outside guest memory, misaligned DBR
	VioReserved                                  // nonzero reserved input field (strict mode)
	VioUAR                                       // unknown UAR offset, unallocated UAR, doorbell on the wrong UAR
	VioDoorbell                                  // doorbell naming an unknown or unready queue, or beyond its DBR
	VioEQOverrun                                 // EQ consumer index not updated in time
	VioCQOverrun                                 // CQ consumer index not updated in time
)

var vioNames = map[ViolationKind]string{VioBadRegisterWrite: "bad-register-write", VioCmdq: "cmdq",
	VioDMA: "dma", VioReserved: "reserved", VioUAR: "uar", VioDoorbell: "doorbell",
	VioEQOverrun: "eq-overrun", VioCQOverrun: "cq-overrun"}

func (k ViolationKind) String() string {
	if s, ok := vioNames[k]; ok {
		return s
	}
	return fmt.Sprintf("violation(%d)", uint8(k))
}

// Violation is one recorded driver protocol violation.
type Violation struct {
	Time   time.Time
	Kind   ViolationKind
	Detail string
}

func (v Violation) String() string { return v.Kind.String() + ": " + v.Detail }

// maxViolations bounds the log; later ones are only counted.
const maxViolations = 1024

// violate records a violation (mu held).
func (d *Device) violate(k ViolationKind, format string, args ...any) {
	if len(d.violations) >= maxViolations {
		d.lostViol++
		return
	}
	v := Violation{Time: d.now(), Kind: k, Detail: fmt.Sprintf(format, args...)}
	d.violations = append(d.violations, v)
	d.log.Debug("mlxdev: driver protocol violation", "kind", k.String(), "detail", v.Detail)
}

// Violations returns the driver protocol violations recorded so far.
func (d *Device) Violations() []Violation {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Violation(nil), d.violations...)
}

// ClearViolations empties the log (tests that provoke violations on
// purpose).
func (d *Device) ClearViolations() {
	d.mu.Lock()
	d.violations, d.lostViol = nil, 0
	d.mu.Unlock()
}
