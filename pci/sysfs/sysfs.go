package sysfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/hvguest/hvguest/pci"
)

// Errors.
var (
	// ErrAddress: not a PCI address of the form DDDD:BB:DD.F.
	ErrAddress = errors.New("pci/sysfs: bad PCI address")
	// ErrBAR: the BAR cannot be mapped (no such BAR, empty, an I/O BAR,
	// or mmap refused).
	ErrBAR = errors.New("pci/sysfs: BAR not mappable")
	// ErrClosed: the mapping was closed.
	ErrClosed = errors.New("pci/sysfs: closed")
)

// DevicesDir is where Linux lists PCI functions.
const DevicesDir = "/sys/bus/pci/devices"

var addrRE = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$`)

// Function is one PCI function's sysfs directory.
type Function struct {
	dir string
}

// Open names the function at addr ("0000:00:02.0", as lspci -D prints it)
// under root (DevicesDir on a real system; a test's directory otherwise).
// It checks that the directory exists; the files are opened on use.
func Open(root, addr string) (*Function, error) {
	if !addrRE.MatchString(addr) {
		return nil, fmt.Errorf("%w: %q", ErrAddress, addr)
	}
	dir := filepath.Join(root, addr)
	if _, err := os.Stat(filepath.Join(dir, "config")); err != nil {
		return nil, fmt.Errorf("pci/sysfs: %s: %w", addr, err)
	}
	return &Function{dir: dir}, nil
}

// Dir is the function's sysfs directory.
func (f *Function) Dir() string { return f.dir }

// Config opens the function's configuration space.
func (f *Function) Config() (*Config, error) { return OpenConfig(filepath.Join(f.dir, "config")) }

// BAR maps BAR i.
func (f *Function) BAR(i int) (*BAR, error) {
	if i < 0 || i >= pci.NumBARs {
		return nil, fmt.Errorf("%w: index %d", ErrBAR, i)
	}
	return OpenBAR(filepath.Join(f.dir, fmt.Sprintf("resource%d", i)))
}

// Config is a pci.ConfigSpace over a sysfs config file. A failed access
// reads all-ones and drops the write, as a master abort does; Err reports
// the last failure. It is safe for concurrent use (each access is one
// pread or pwrite).
type Config struct {
	f    *os.File
	size int
	err  atomic.Pointer[error]
}

var _ pci.ConfigSpace = (*Config)(nil)

// OpenConfig opens a config file read-write.
func OpenConfig(path string) (*Config, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("pci/sysfs: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("pci/sysfs: %w", err)
	}
	size := int(min(st.Size(), 4096))
	if size < 64 {
		// Unprivileged readers see 64 bytes; a header needs at least that.
		f.Close()
		return nil, fmt.Errorf("pci/sysfs: %s: %d bytes of config space", path, size)
	}
	return &Config{f: f, size: size}, nil
}

// Close closes the file; later accesses read all-ones.
func (c *Config) Close() error { return c.f.Close() }

// Err is the last access failure, nil if none.
func (c *Config) Err() error {
	if p := c.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (c *Config) fail(err error) { c.err.Store(&err) }

func (c *Config) read(off, n int) ([]byte, bool) {
	if off < 0 || off%n != 0 || off+n > c.size {
		c.fail(fmt.Errorf("pci/sysfs: config read of %d at %#x outside [0, %#x) or misaligned", n, off, c.size))
		return nil, false
	}
	var b [4]byte
	if got, err := c.f.ReadAt(b[:n], int64(off)); got != n {
		c.fail(fmt.Errorf("pci/sysfs: config read at %#x: %d bytes, %v", off, got, err))
		return nil, false
	}
	return b[:n], true
}

func (c *Config) write(off int, b []byte) {
	n := len(b)
	if off < 0 || off%n != 0 || off+n > c.size {
		c.fail(fmt.Errorf("pci/sysfs: config write of %d at %#x outside [0, %#x) or misaligned", n, off, c.size))
		return
	}
	if got, err := c.f.WriteAt(b, int64(off)); got != n {
		c.fail(fmt.Errorf("pci/sysfs: config write at %#x: %d bytes, %v", off, got, err))
	}
}

// Configuration space is little-endian (PCI Local Bus §6.1).

func (c *Config) Read8(off int) uint8 {
	if b, ok := c.read(off, 1); ok {
		return b[0]
	}
	return 0xFF
}

func (c *Config) Read16(off int) uint16 {
	if b, ok := c.read(off, 2); ok {
		return binary.LittleEndian.Uint16(b)
	}
	return 0xFFFF
}

func (c *Config) Read32(off int) uint32 {
	if b, ok := c.read(off, 4); ok {
		return binary.LittleEndian.Uint32(b)
	}
	return 0xFFFFFFFF
}

func (c *Config) Write8(off int, v uint8) { c.write(off, []byte{v}) }

func (c *Config) Write16(off int, v uint16) { c.write(off, binary.LittleEndian.AppendUint16(nil, v)) }

func (c *Config) Write32(off int, v uint32) { c.write(off, binary.LittleEndian.AppendUint32(nil, v)) }

// BAR is a pci.BAR over an mmap of a sysfs resource file. Out-of-range or
// misaligned accesses read all-ones and drop writes. Close unmaps it: the
// driver must have stopped touching the BAR first (mlx's Detach and
// Surprise do), since an access racing the unmap would fault.
type BAR struct {
	mem    []byte
	closed atomic.Bool
}

var _ pci.BAR = (*BAR)(nil)

// OpenBAR maps a resource file read-write and shared.
func OpenBAR(path string) (*BAR, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_SYNC, 0)
	if err != nil {
		return nil, fmt.Errorf("pci/sysfs: %w", err)
	}
	defer f.Close() // the mapping outlives the descriptor
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("pci/sysfs: %w", err)
	}
	size := st.Size()
	if size <= 0 || size > 1<<40 {
		return nil, fmt.Errorf("%w: %s is %d bytes", ErrBAR, path, size)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: mmap: %v", ErrBAR, path, err)
	}
	return &BAR{mem: mem}, nil
}

// Len is the BAR's size in bytes.
func (b *BAR) Len() uint64 { return uint64(len(b.mem)) }

// Mem is the mapping itself, for a BAR that is plain shared memory rather
// than registers (ivshmem's BAR 2, which carries the hvsim transport into a
// QEMU guest). It is invalid after Close.
func (b *BAR) Mem() []byte { return b.mem }

func (b *BAR) ok(off uint64, n uint64) bool {
	return off%n == 0 && off < uint64(len(b.mem)) && uint64(len(b.mem))-off >= n && !b.closed.Load()
}

func (b *BAR) Read32(off uint64) uint32 {
	if !b.ok(off, 4) {
		return ^uint32(0)
	}
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&b.mem[off])))
}

func (b *BAR) Read64(off uint64) uint64 {
	if !b.ok(off, 8) {
		return ^uint64(0)
	}
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(&b.mem[off])))
}

func (b *BAR) Write32(off uint64, v uint32) {
	if b.ok(off, 4) {
		atomic.StoreUint32((*uint32)(unsafe.Pointer(&b.mem[off])), v)
	}
}

func (b *BAR) Write64(off uint64, v uint64) {
	if b.ok(off, 8) {
		atomic.StoreUint64((*uint64)(unsafe.Pointer(&b.mem[off])), v)
	}
}

// Close unmaps the BAR; later accesses read all-ones. A second Close
// returns ErrClosed.
func (b *BAR) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	return unix.Munmap(b.mem)
}
