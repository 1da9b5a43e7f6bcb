package mlxhw

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// Hand-built byte images: these helpers write big-endian values at byte
// offsets taken straight from the spec tables, independent of Field.
func w8(b []byte, off int, v uint8)   { b[off] = v }
func w16(b []byte, off int, v uint16) { binary.BigEndian.PutUint16(b[off:], v) }
func w32(b []byte, off int, v uint32) { binary.BigEndian.PutUint32(b[off:], v) }
func w64(b []byte, off int, v uint64) { binary.BigEndian.PutUint64(b[off:], v) }

func same(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("%s: first difference at %#x: got %#02x want %#02x (len %d/%d)\n got %x\nwant %x",
					what, i, got[i], want[i], len(got), len(want), got, want)
			}
		}
		t.Fatalf("%s: length %d, want %d", what, len(got), len(want))
	}
}

var sentinels = []error{ErrShort, ErrLength, ErrField, ErrOpcode, ErrBuffer, ErrMailbox, ErrNotOwned, ErrStatus}

func sentinel(t *testing.T, err error) {
	t.Helper()
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error without a sentinel: %v", err)
}

// memDMA is guest memory for chain tests: a flat byte slice at base.
type memDMA struct {
	base uint64
	mem  []byte
}

func (m *memDMA) span(addr uint64, n int) ([]byte, error) {
	if addr < m.base || addr-m.base > uint64(len(m.mem)) || uint64(len(m.mem))-(addr-m.base) < uint64(n) {
		return nil, fmt.Errorf("DMA outside memory: %#x+%d", addr, n)
	}
	o := addr - m.base
	return m.mem[o : o+uint64(n)], nil
}

func (m *memDMA) ReadDMA(addr uint64, b []byte) error {
	s, err := m.span(addr, len(b))
	if err == nil {
		copy(b, s)
	}
	return err
}

func (m *memDMA) WriteDMA(addr uint64, b []byte) error {
	s, err := m.span(addr, len(b))
	if err == nil {
		copy(s, b)
	}
	return err
}

func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}
