package vmbusmsg

import (
	"encoding/binary"

	"github.com/hvguest/hvguest/hyperv/tlfs"
)

var le = binary.LittleEndian

func appendHeader(b []byte, t MessageType) []byte {
	b = le.AppendUint32(b, uint32(t))
	return le.AppendUint32(b, 0)
}

func u16(b []byte, off int) uint16 { return le.Uint16(b[off:]) }
func u32(b []byte, off int) uint32 { return le.Uint32(b[off:]) }
func u64(b []byte, off int) uint64 { return le.Uint64(b[off:]) }

func guid(b []byte, off int) (g tlfs.GUID) {
	copy(g[:], b[off:off+16])
	return g
}
