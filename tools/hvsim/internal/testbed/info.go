package testbed

import (
	"fmt"
	"io"
	"strings"

	"github.com/hvguest/hvguest/net/failover"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/tools/hvctl"
)

// Ifconfig prints the guest's interfaces the way FreeBSD's ifconfig does,
// followed by what was negotiated with the host.
func (tb *Testbed) Ifconfig(w io.Writer) {
	for _, ifp := range tb.reg.Interfaces() {
		WriteIfconfig(w, ifp, tb.addrOf(ifp))
	}
	fmt.Fprintf(w, "vmbus: protocol %v\n", tb.bus.Version())
	if info := tb.hn.Info(); info.NVSP != 0 {
		fmt.Fprintf(w, "hn0: NVSP %v, %v, receive buffer %d KiB (%d slots of %d), send buffer %d KiB (%d sections of %d)\n",
			info.NVSP, info.NDIS, info.RecvBuffer>>10, info.RecvSlots, info.RecvSlotSize,
			info.SendBuffer>>10, info.Sections, info.SectionSize)
	}
	a := tb.hn.VFAssociation()
	fmt.Fprintf(w, "hn0: data path %v, VF association allocated=%v serial=%#x (generation %d)\n",
		tb.dataPath(), a.Allocated, a.Serial, a.Generation)
	for _, b := range tb.pciDrv.Buses() {
		fmt.Fprintf(w, "pcib: vPCI bus %v, protocol %v\n", b.Instance(), b.Version())
		for _, f := range b.Functions() {
			d := f.Description()
			fmt.Fprintf(w, "  %s: vendor 0x%04x device 0x%04x serial %#x%s\n", f.SlotName(),
				d.VendorID, d.DeviceID, f.Serial(), map[bool]string{true: " (removed)"}[f.Removed()])
		}
	}
	st := tb.hn.VFStatus()
	fmt.Fprintf(w, "hn0: VF mode %v, state %s, VF %q, transmit to %s, attach wait %v\n", st.Mode, st.State, st.VF, st.TxTarget, st.AttachWait)
	if tb.fo != nil {
		fmt.Fprintf(w, "failover0: primary %v, standby %v, transmitting on %v\n",
			tb.fo.Member(failover.Primary), tb.fo.Member(failover.Standby), tb.fo.Active())
	}
}

func (tb *Testbed) addrOf(ifp *ifnet.Interface) string {
	if ifp == tb.gif {
		return GuestIP.String()
	}
	return ""
}

// WriteIfconfig prints one interface in ifconfig style; inet, if set, is
// its IPv4 address (in 192.0.2.0/24).
func WriteIfconfig(w io.Writer, ifp *ifnet.Interface, inet string) {
	fmt.Fprintf(w, "%s: flags=%x<%s> mtu %d\n", ifp.Name(), uint32(ifp.Flags()), strings.ReplaceAll(ifp.Flags().String(), "|", ","), ifp.MTU())
	if c := ifp.CapEnabled(); c != 0 {
		fmt.Fprintf(w, "\toptions=%x<%s>\n", uint32(c), strings.ReplaceAll(c.String(), "|", ","))
	}
	if c := ifp.Capabilities(); c != 0 {
		fmt.Fprintf(w, "\tcapabilities=%x<%s>\n", uint32(c), strings.ReplaceAll(c.String(), "|", ","))
	}
	fmt.Fprintf(w, "\tether %s\n", ifp.MAC())
	if inet != "" {
		fmt.Fprintf(w, "\tinet %s netmask 0xffffff00 broadcast 192.0.2.255\n", inet)
	}
	fmt.Fprintf(w, "\thwassist=%x<%s>", uint32(ifp.HWAssist()), strings.ReplaceAll(ifp.HWAssist().String(), "|", ","))
	if t := ifp.TSOLimits(); t.MaxBytes != 0 {
		fmt.Fprintf(w, " tso %d bytes, %d segments of %d", t.MaxBytes, t.MaxSegments, t.MaxSegmentSize)
	}
	fmt.Fprintln(w)
	m := ifp.Media()
	fmt.Fprintf(w, "\tmedia: %v (%v)\n", m.Current, m.Active)
	status := "no carrier"
	if ifp.LinkState() == ifnet.LinkUp || m.Status&ifnet.MediaActive != 0 {
		status = "active"
	}
	fmt.Fprintf(w, "\tstatus: %s\n", status)
	kind := ifp.Kind().String()
	if s, ok := ifp.BusSerial(); ok {
		kind += fmt.Sprintf(", vPCI serial %#x", s)
	}
	st := ifp.Stats()
	fmt.Fprintf(w, "\tkind: %s; in %d packets %d bytes, out %d packets %d bytes, drops %d\n",
		kind, st.InPackets, st.InBytes, st.OutPackets, st.OutBytes, st.TotalDrops())
}

// Control is what hvctl operates on: the guest's hn NICs.
func (tb *Testbed) Control() hvctl.Target { return hvctl.DriverTarget(tb.drv) }
