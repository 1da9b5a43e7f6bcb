package testbed

import (
	"maps"
	"slices"
	"time"

	"github.com/hvguest/hvguest/drivers/mlx/mlxdev"
)

// Report is the outcome of a run; it marshals to the JSON object that
// `hvsim migrate --json` prints.
type Report struct {
	Mode         string  `json:"mode"`
	Seed         uint64  `json:"seed"`
	RateFPS      int     `json:"rate_fps"`
	FrameSize    int     `json:"frame_size"`
	TrafficMS    float64 `json:"traffic_ms"`
	Surprise     bool    `json:"surprise"`
	AttachWaitMS float64 `json:"attach_wait_ms"`
	// AttachWaitSkipped: hn's clock jumped over its attach waits.
	AttachWaitSkipped bool `json:"attach_wait_skipped"`

	FramesSent     uint64 `json:"frames_sent"`
	FramesReceived uint64 `json:"frames_received"`
	Lost           uint64 `json:"lost"`
	Duplicated     uint64 `json:"duplicated"`
	Corrupt        uint64 `json:"corrupt"`
	// LostOutsideMigrations: lost frames not attributed to a migration.
	LostOutsideMigrations uint64 `json:"lost_outside_migrations"`
	// SequenceExhausted: a sender ran out of sequence numbers before the
	// traffic ended (the run outlasted its estimate); it stopped sending.
	SequenceExhausted bool    `json:"sequence_exhausted"`
	EjectDelayMS      float64 `json:"eject_delay_ms"`

	ToGuest   DirReport `json:"to_guest"`
	ToStation DirReport `json:"to_station"`
	// Paths counts stream frames by the path they took, from the guest's
	// side: tx = sent by the guest, rx = received by the guest.
	Paths map[string]PathCount `json:"paths"`
	Host  HostReport           `json:"host"`
	// Guest is the guest drivers' own per-path accounting (every frame,
	// stream and TCP).
	Guest GuestReport `json:"guest"`
	// GuestDrops are the guest interfaces' drop counters
	// ("interface_reason"), every VF interface of the run included.
	GuestDrops map[string]uint64 `json:"guest_drops"`

	TCP TCPReport `json:"tcp"`

	MigrationsRequested int               `json:"migrations_requested"`
	MigrationsDone      int               `json:"migrations_done"`
	Migrations          []MigrationReport `json:"migrations"`
	SwitchOvers         []SwitchReport    `json:"switch_overs"`
	// BaselineGapUS is the 99th percentile of the intervals between
	// delivered frames over the whole run (frames arrive in batches, so the
	// median is near zero): what a switch-over's gap compares with.
	BaselineGapUS float64 `json:"baseline_gap_us"`
	Error         string  `json:"error,omitempty"`

	series [2][]delivery // per direction, for the plot (ToGuest, ToStation)
	events []event
}

// DirReport is one direction of the stream.
type DirReport struct {
	Sent       uint64 `json:"sent"`
	Received   uint64 `json:"received"`
	Lost       uint64 `json:"lost"`
	Duplicated uint64 `json:"duplicated"`
	Corrupt    uint64 `json:"corrupt"`
	Refused    uint64 `json:"tx_refused"` // the sending interface kept refusing them (included in lost)
	Synthetic  uint64 `json:"synthetic"`
	VF         uint64 `json:"vf"`
}

// GuestReport is what hn (and the failover aggregate) counted per path.
type GuestReport struct {
	HnSyntheticTx  uint64 `json:"hn_synthetic_tx"`
	HnSyntheticRx  uint64 `json:"hn_synthetic_rx"`
	HnVFTx         uint64 `json:"hn_vf_tx"`
	HnVFRx         uint64 `json:"hn_vf_rx"`
	HnVFTxFallback uint64 `json:"hn_vf_tx_fallback"` // packets a departed VF left, sent synthetic
	HnVFTxBusy     uint64 `json:"hn_vf_tx_busy"`
	HnRxSynthVF    uint64 `json:"hn_rx_synthetic_while_vf"`
	HnRxRelabelled uint64 `json:"hn_rx_relabelled_to_vf"` // non-transparent
	// Failover mode only.
	FailoverPrimaryTx  uint64 `json:"failover_primary_tx,omitempty"`
	FailoverPrimaryRx  uint64 `json:"failover_primary_rx,omitempty"`
	FailoverStandbyTx  uint64 `json:"failover_standby_tx,omitempty"`
	FailoverStandbyRx  uint64 `json:"failover_standby_rx,omitempty"`
	Failovers          uint64 `json:"failovers,omitempty"`
	FailoverTxNoMember uint64 `json:"failover_tx_no_member,omitempty"`
}

// PathCount is a path's frame counts.
type PathCount struct {
	Tx uint64 `json:"tx"`
	Rx uint64 `json:"rx"`
}

// HostReport holds the host's own counters.
type HostReport struct {
	NetvspTxFrames   uint64 `json:"netvsp_tx_frames"`
	NetvspRxFrames   uint64 `json:"netvsp_rx_frames"`
	NetvspRxDropped  uint64 `json:"netvsp_rx_dropped"`
	SwitchDrops      uint64 `json:"switch_drops"`
	RemoteQueueDrops uint64 `json:"remote_queue_drops"`
	// VFDrops are the VF device models' drops by direction and reason.
	VFDrops map[string]uint64 `json:"vf_drops"`
	// NetvspPathSynthetic and NetvspPathVF count the unicast frames the
	// host steered to each path; NetvspPathSwitches the host's switches.
	NetvspPathSynthetic uint64 `json:"netvsp_path_synthetic"`
	NetvspPathVF        uint64 `json:"netvsp_path_vf"`
	NetvspPathSwitches  uint64 `json:"netvsp_path_switches"`
}

// TCPReport sums the TCP transfers.
type TCPReport struct {
	Bytes         int64       `json:"bytes"`
	ChecksumMatch bool        `json:"checksum_match"`
	Transfers     []TCPResult `json:"transfers"`
}

// MigrationReport is one live migration, times in ms since traffic start.
type MigrationReport struct {
	Index       int     `json:"index"`
	Kind        string  `json:"kind"` // planned or surprise
	WithdrawMS  float64 `json:"withdraw_ms"`
	RemovedMS   float64 `json:"removed_ms"`
	ReofferMS   float64 `json:"reoffer_ms"`
	TakenMS     float64 `json:"taken_ms"`
	SyntheticMS float64 `json:"on_synthetic_ms"`
	// SurpriseLoss bounds what a surprise removal could lose (surprise
	// only); Lost is what the stream lost in this migration.
	SurpriseLoss *surpriseLoss `json:"surprise_loss,omitempty"`
	Lost         uint64        `json:"lost"`
}

// SwitchReport is one data-path switch-over.
type SwitchReport struct {
	Migration      int     `json:"migration"`
	Kind           string  `json:"kind"` // to_synthetic or to_vf
	AtMS           float64 `json:"at_ms"`
	GapUS          float64 `json:"gap_us"` // the longer of the two directions
	GapToGuestUS   float64 `json:"gap_to_guest_us"`
	GapToStationUS float64 `json:"gap_to_station_us"`
	Lost           uint64  `json:"lost"` // frames sent in the window and never delivered
}

// A migration's loss window: lossLead is how long before a migration
// began a frame may have been sent and still be in flight (in a ring) when
// it began; lossTail is how long after the guest took the VF back a frame
// may still have been sent into the old path. A frame lost outside every
// window is steady-state loss (an overloaded guest, say), not a migration's.
const (
	lossLead = 50 * time.Millisecond
	lossTail = 50 * time.Millisecond
)

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// lossWindows gives each migration its loss window [from, to] in ns on the
// run's clock: from lossLead before it began (frames already in the VF's
// rings then) until lossTail after the guest took the VF back. A migration
// the guest never finished runs until lossLead before the next one began,
// or the end; no window reaches into the next one's.
func lossWindows(start, end int64, ms []MigrationReport) [][2]int64 {
	w := make([][2]int64, len(ms))
	for i, m := range ms {
		from := start + int64(m.WithdrawMS*1e6) - int64(lossLead)
		to := end
		if i+1 < len(ms) {
			to = start + int64(ms[i+1].WithdrawMS*1e6) - int64(lossLead) - 1
		}
		if m.TakenMS > 0 {
			to = min(to, start+int64(m.TakenMS*1e6)+int64(lossTail))
		}
		w[i] = [2]int64{from, to}
	}
	return w
}

func (tb *Testbed) report(start, end int64, toGuest, toStation *sender, tcp []TCPResult, log *migrationLog) *Report {
	cfg := tb.cfg
	r := &Report{Mode: string(cfg.Mode), Seed: cfg.Seed, RateFPS: cfg.Rate, FrameSize: cfg.FrameSize,
		TrafficMS: ms(end - start), Surprise: cfg.Surprise, AttachWaitMS: ms(int64(tb.attachWait())), AttachWaitSkipped: cfg.SkipAttachWait,
		MigrationsRequested: cfg.Migrations, EjectDelayMS: ms(int64(cfg.EjectDelay)),
		SequenceExhausted: toGuest.sent.Load() >= toGuest.max || toStation.sent.Load() >= toStation.max, Paths: map[string]PathCount{},
		Migrations: []MigrationReport{}, SwitchOvers: []SwitchReport{}}
	rxs := [2]*streamRx{tb.toGuest, tb.toStation}
	txs := [2]*sender{toGuest, toStation}
	sorted := [2][]int64{}
	for i, rx := range rxs {
		s := txs[i]
		sent := s.sent.Load()
		d, got := rx.deliveries(sent)
		r.series[i] = d
		dr := DirReport{Sent: sent, Received: got, Lost: sent - got, Duplicated: rx.dups.Load(),
			Corrupt: rx.corrupt.Load(), Refused: s.refused.Load()}
		ts := make([]int64, len(d))
		for j, x := range d {
			ts[j] = x.at
			if x.path == PathVF {
				dr.VF++
			} else {
				dr.Synthetic++
			}
		}
		slices.Sort(ts)
		sorted[i] = ts
		if i == 0 {
			r.ToGuest = dr
		} else {
			r.ToStation = dr
		}
		r.FramesSent += dr.Sent
		r.FramesReceived += dr.Received
		r.Lost += dr.Lost
		r.Duplicated += dr.Duplicated
		r.Corrupt += dr.Corrupt
	}
	r.Paths["synthetic"] = PathCount{Tx: r.ToStation.Synthetic, Rx: r.ToGuest.Synthetic}
	r.Paths["vf"] = PathCount{Tx: r.ToStation.VF, Rx: r.ToGuest.VF}

	ns := tb.nic.Stats()
	r.Host = HostReport{NetvspTxFrames: ns.TxFrames, NetvspRxFrames: ns.RxFrames, NetvspRxDropped: ns.RxDropped,
		RemoteQueueDrops: tb.remote.queueDrops.Load(), NetvspPathSynthetic: ns.PathSynthetic,
		NetvspPathVF: ns.PathVF, NetvspPathSwitches: ns.PathSwitches}
	r.GuestDrops = tb.guestDrops()
	hs := tb.hn.Stats()
	r.Guest = GuestReport{HnSyntheticTx: hs.TxPackets, HnSyntheticRx: hs.RxPackets, HnVFTx: hs.VFTxPackets,
		HnVFRx: hs.VFRxPackets, HnVFTxFallback: hs.VFTxFallback, HnVFTxBusy: hs.VFTxBusy,
		HnRxSynthVF: hs.RxSynthWhileVF, HnRxRelabelled: hs.RxRelabelledToVF}
	if tb.fo != nil {
		fs := tb.fo.Stats()
		r.Guest.FailoverPrimaryTx, r.Guest.FailoverPrimaryRx = fs.Primary.TxPackets, fs.Primary.RxPackets
		r.Guest.FailoverStandbyTx, r.Guest.FailoverStandbyRx = fs.Standby.TxPackets, fs.Standby.RxPackets
		r.Guest.Failovers, r.Guest.FailoverTxNoMember = fs.Failovers, fs.TxNoMember
	}
	tb.dropMu.Lock()
	r.Host.VFDrops = maps.Clone(tb.hostDrops)
	tb.dropMu.Unlock()
	if tb.vf != nil { // the VF still offered: its drops so far
		st := tb.vf.dev.Stats()
		for d := range mlxdev.NumDropReasons {
			if n := st.RxDrops[d]; n > 0 {
				r.Host.VFDrops["vf_rx_"+d.String()] += n
			}
			if n := st.TxDrops[d]; n > 0 {
				r.Host.VFDrops["vf_tx_"+d.String()] += n
			}
		}
	}
	for _, p := range tb.sw.Ports() {
		r.Host.SwitchDrops += p.Stats().TotalDrops()
	}

	r.TCP.ChecksumMatch = len(tcp) > 0
	for _, t := range tcp {
		r.TCP.Bytes += t.Received
		r.TCP.ChecksumMatch = r.TCP.ChecksumMatch && t.Match
	}
	r.TCP.Transfers = tcp

	log.mu.Lock()
	defer log.mu.Unlock()
	if log.err != nil {
		r.Error = log.err.Error()
	}
	r.MigrationsDone = log.done
	r.events = slices.Clone(log.events)
	kind := "planned"
	if cfg.Surprise {
		kind = "surprise"
	}
	for _, e := range log.events {
		if len(r.Migrations) <= e.migration {
			r.Migrations = append(r.Migrations, MigrationReport{Index: e.migration, Kind: kind})
		}
		m := &r.Migrations[e.migration]
		t := ms(e.at - start)
		switch e.kind {
		case "withdraw":
			m.WithdrawMS = t
		case "removed":
			m.RemovedMS = t
		case "reoffer":
			m.ReofferMS = t
		case "taken":
			m.TakenMS = t
			m.SyntheticMS = m.TakenMS - m.WithdrawMS
		}
	}
	for _, l := range log.losses {
		if l.migration < len(r.Migrations) {
			x := l.rec.loss()
			r.Migrations[l.migration].SurpriseLoss = &x
		}
	}
	// A migration's loss: stream frames sent in its window that never
	// arrived.
	var inMigrations uint64
	for i, w := range lossWindows(start, end, r.Migrations) {
		m := &r.Migrations[i]
		m.Lost = lostIn(toGuest, tb.toGuest, w[0], w[1]) + lostIn(toStation, tb.toStation, w[0], w[1])
		inMigrations += m.Lost
	}
	r.LostOutsideMigrations = r.Lost - min(r.Lost, inMigrations)
	for _, sw := range log.switches {
		s, e := max(sw.start, start), min(sw.end, end)
		g0 := longestGap(sorted[0], s, e)
		g1 := longestGap(sorted[1], s, e)
		lost := lostIn(toGuest, tb.toGuest, s, e) + lostIn(toStation, tb.toStation, s, e)
		r.SwitchOvers = append(r.SwitchOvers, SwitchReport{Migration: sw.migration, Kind: sw.kind,
			AtMS: ms(sw.at - start), GapUS: float64(max(g0, g1)) / 1e3,
			GapToGuestUS: float64(g0) / 1e3, GapToStationUS: float64(g1) / 1e3, Lost: lost})
	}
	r.BaselineGapUS = float64(max(percentileGap(sorted[0], 99), percentileGap(sorted[1], 99))) / 1e3
	return r
}

// longestGap is the longest interval within [from, to] in which no frame
// of the sorted delivery times ts was delivered.
func longestGap(ts []int64, from, to int64) int64 {
	if to <= from {
		return 0
	}
	i, _ := slices.BinarySearch(ts, from)
	prev, gap := from, int64(0)
	for ; i < len(ts) && ts[i] <= to; i++ {
		gap = max(gap, ts[i]-prev)
		prev = ts[i]
	}
	return max(gap, to-prev)
}

// percentileGap is the pct-th percentile of the intervals between
// consecutive deliveries.
func percentileGap(ts []int64, pct int) int64 {
	if len(ts) < 2 {
		return 0
	}
	d := make([]int64, len(ts)-1)
	for i := range d {
		d[i] = ts[i+1] - ts[i]
	}
	slices.Sort(d)
	return d[min(len(d)-1, len(d)*pct/100)]
}

// lostIn counts the frames s sent within [from, to] that rx never got.
func lostIn(s *sender, rx *streamRx, from, to int64) uint64 {
	var n uint64
	sent := s.sent.Load()
	for seq := uint64(0); seq < sent && seq < uint64(len(s.sentAt)); seq++ {
		if t := s.sentAt[seq]; t >= from && t <= to && rx.arrival[seq].Load() == 0 {
			n++
		}
	}
	return n
}
