// Package hvctl is hvguest's control tool for the guest's hn NICs: the
// status and tunables of their SR-IOV VF modes (spec/vf-modes.md §6, the
// FreeBSD sysctls dev.hn.N.vf, vf_xpnt_enabled, vf_xpnt_accbpf,
// hw.hn.vf_xpnt_attwait; Linux's ethtool vf_* counters), over the netvsc
// Device API.
//
// Side: guest. It runs in the process that holds the guest (hvsim or an
// application): Run executes one command against a Target, and Serve
// answers commands from the hvctl command (cmd/hvctl) over a local
// socket.
//
// Commands:
//
//	vf [hnX]                       VF status of every (or one) hn
//	stats [hnX]                    per-path counters (synthetic vs VF)
//	set hnX attwait <duration>     attach wait (raised to the 2 s minimum)
//	set hnX capture before|after   transmit capture before or after the VF accepts
//	set hnX mode transparent|non-transparent
//	                               how hn uses its VF (a paired VF is handed back and re-paired)
//
// With -json first, output is JSON.
package hvctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hvguest/hvguest/drivers/netvsc"
)

// Sentinel errors.
var (
	// ErrUsage: the command line is malformed.
	ErrUsage = errors.New("hvctl: usage")
	// ErrNoNIC: no hn of that name.
	ErrNoNIC = errors.New("hvctl: no such interface")
)

// NIC is what hvctl needs of one hn (netvsc.Device implements it).
type NIC interface {
	Name() string
	VFStatus() netvsc.VFStatus
	Stats() netvsc.Stats
	SetVFAttachWait(time.Duration) time.Duration
	SetVFCaptureAfter(bool)
	SetVFMode(netvsc.VFMode) error
}

// Target lists the NICs hvctl operates on.
type Target interface{ NICs() []NIC }

// DriverTarget is the Target of a netvsc driver's devices.
func DriverTarget(drv *netvsc.Driver) Target { return driverTarget{drv} }

type driverTarget struct{ drv *netvsc.Driver }

func (t driverTarget) NICs() []NIC {
	var out []NIC
	for _, d := range t.drv.Devices() {
		out = append(out, d)
	}
	return out
}

const usage = "usage: hvctl [-json] vf [hnX] | stats [hnX] | set hnX attwait <duration> | set hnX capture before|after | set hnX mode transparent|non-transparent"

// Run executes one command and writes its output to out.
func Run(t Target, args []string, out io.Writer) error {
	asJSON := false
	if len(args) > 0 && args[0] == "-json" {
		asJSON, args = true, args[1:]
	}
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", ErrUsage, usage)
	}
	nics := t.NICs()
	slices.SortFunc(nics, func(a, b NIC) int { return strings.Compare(a.Name(), b.Name()) })
	pick := func(rest []string) ([]NIC, error) {
		switch len(rest) {
		case 0:
			return nics, nil
		case 1:
			for _, n := range nics {
				if n.Name() == rest[0] {
					return []NIC{n}, nil
				}
			}
			return nil, fmt.Errorf("%w: %q", ErrNoNIC, rest[0])
		}
		return nil, fmt.Errorf("%w: %s", ErrUsage, usage)
	}
	switch args[0] {
	case "vf":
		sel, err := pick(args[1:])
		if err != nil {
			return err
		}
		return writeStatus(out, sel, asJSON)
	case "stats":
		sel, err := pick(args[1:])
		if err != nil {
			return err
		}
		return writeStats(out, sel, asJSON)
	case "set":
		if len(args) != 4 {
			return fmt.Errorf("%w: %s", ErrUsage, usage)
		}
		sel, err := pick(args[1:2])
		if err != nil {
			return err
		}
		return set(out, sel[0], args[2], args[3])
	}
	return fmt.Errorf("%w: unknown command %q; %s", ErrUsage, args[0], usage)
}

func set(out io.Writer, n NIC, key, val string) error {
	switch key {
	case "attwait":
		d, err := time.ParseDuration(val)
		if err != nil || d <= 0 {
			return fmt.Errorf("%w: attwait %q is not a positive duration", ErrUsage, val)
		}
		_, err = fmt.Fprintf(out, "%s attwait %s\n", n.Name(), n.SetVFAttachWait(d))
		return err
	case "capture":
		switch val {
		case "before", "after":
			n.SetVFCaptureAfter(val == "after")
			_, err := fmt.Fprintf(out, "%s capture %s\n", n.Name(), val)
			return err
		}
		return fmt.Errorf("%w: capture is before or after, not %q", ErrUsage, val)
	case "mode":
		var m netvsc.VFMode
		switch val {
		case netvsc.VFTransparent.String():
			m = netvsc.VFTransparent
		case netvsc.VFNonTransparent.String():
			m = netvsc.VFNonTransparent
		default:
			return fmt.Errorf("%w: mode is transparent or non-transparent, not %q", ErrUsage, val)
		}
		if err := n.SetVFMode(m); err != nil {
			return err
		}
		_, err := fmt.Fprintf(out, "%s mode %s\n", n.Name(), m)
		return err
	}
	return fmt.Errorf("%w: unknown setting %q", ErrUsage, key)
}

// statusJSON is the JSON shape of one NIC's VF status.
type statusJSON struct {
	Name string `json:"name"`
	netvsc.VFStatus
	AttachWait string `json:"AttachWait"`
}

func writeStatus(out io.Writer, nics []NIC, asJSON bool) error {
	if asJSON {
		var all []statusJSON
		for _, n := range nics {
			st := n.VFStatus()
			all = append(all, statusJSON{Name: n.Name(), VFStatus: st, AttachWait: st.AttachWait.String()})
		}
		return json.NewEncoder(out).Encode(all)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IF\tMODE\tSTATE\tVF\tSERIAL\tENABLED\tASSOC\tGEN\tPATH\tTX\tRXVF\tATTWAIT\tCAPTURE\tREFUSED\tERROR")
	for _, n := range nics {
		st := n.VFStatus()
		vf, serial, assoc, path, capture := dash(st.VF), "-", "withdrawn", "synthetic", "before"
		if st.HasSerial {
			serial = fmt.Sprint(st.Serial)
		}
		if st.Association.Allocated {
			assoc = fmt.Sprintf("allocated:%d", st.Association.Serial)
		}
		if st.DataPath != 0 {
			path = "vf"
		}
		if st.CaptureAfter {
			capture = "after"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", n.Name(), st.Mode, st.State, vf, serial,
			st.Enabled, assoc, st.Association.Generation, path, st.TxTarget, dash(st.RxVF), st.AttachWait, capture, st.Refused, dash(st.LastError))
	}
	return tw.Flush()
}

func writeStats(out io.Writer, nics []NIC, asJSON bool) error {
	type row struct {
		Name string `json:"name"`
		netvsc.Stats
	}
	if asJSON {
		var all []row
		for _, n := range nics {
			all = append(all, row{n.Name(), n.Stats()})
		}
		return json.NewEncoder(out).Encode(all)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IF\tsynth_tx_packets\tsynth_tx_bytes\tsynth_rx_packets\tsynth_rx_bytes\tvf_tx_packets\tvf_tx_bytes\tvf_tx_busy\tvf_tx_fallback\tvf_rx_packets\tvf_rx_bytes\tsynth_rx_while_vf\trx_to_vf")
	for _, n := range nics {
		s := n.Stats()
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", n.Name(), s.TxPackets, s.TxBytes, s.RxPackets, s.RxBytes,
			s.VFTxPackets, s.VFTxBytes, s.VFTxBusy, s.VFTxFallback, s.VFRxPackets, s.VFRxBytes, s.RxSynthWhileVF, s.RxRelabelledToVF)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
