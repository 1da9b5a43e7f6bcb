package ring

import "fmt"

// PageSize is the 4 KiB unit in which ring-pair regions are laid out,
// whatever the guest page size.
const PageSize = 4096

// Memory is one ring's memory: its control page and its data area.
type Memory struct {
	Control []byte
	Data    []byte
}

// Split cuts a single ring's memory (a control page followed by the data
// area) into its two parts.
func Split(b []byte) (Memory, error) {
	if len(b) < ControlSize+PageSize || len(b)%PageSize != 0 {
		return Memory{}, fmt.Errorf("%w: ring of %d bytes (want a multiple of %d, at least %d)",
			ErrMemory, len(b), PageSize, ControlSize+PageSize)
	}
	return Memory{Control: b[:ControlSize:ControlSize], Data: b[ControlSize:]}, nil
}

// SplitPair cuts the memory of a channel's ring-buffer GPADL into its two
// rings (spec §4; Linux vmbus_open, OpenVMM make_rings). The region is
// [first ring: control page + data][second ring: control page + data], and
// firstPages is OPENCHANNEL.downstream_ringbuffer_pageoffset, the length
// of the first ring in 4 KiB pages.
//
// The first ring carries guest-to-host packets: the guest writes it and
// the host reads it. The second carries host-to-guest packets.
func SplitPair(region []byte, firstPages int) (first, second Memory, err error) {
	if firstPages < 2 || firstPages > len(region)/PageSize {
		return Memory{}, Memory{}, fmt.Errorf("%w: first ring of %d pages in a region of %d bytes",
			ErrMemory, firstPages, len(region))
	}
	cut := firstPages * PageSize
	if first, err = Split(region[:cut:cut]); err != nil {
		return Memory{}, Memory{}, fmt.Errorf("first ring: %w", err)
	}
	if second, err = Split(region[cut:]); err != nil {
		return Memory{}, Memory{}, fmt.Errorf("second ring: %w", err)
	}
	return first, second, nil
}
