package mlx

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hvguest/hvguest/drivers/mlx/mlxhw"
	"github.com/hvguest/hvguest/kernel"
	"github.com/hvguest/hvguest/pci"
)

// Command queue (spec §2.1–§2.4, §7.4). The driver uses slot 0 for every
// command, one at a time: the command rate of a NIC driver is tiny, and a
// single outstanding command makes the token and the CMD EQE vector
// unambiguous. Until the command EQ exists the driver polls the
// ownership bit; afterwards the CMD EQE wakes it (and it still polls
// slowly, so a lost EQE costs latency, not a hang).

const (
	cmdSlot       = 0
	cmdMboxBlocks = 24 // per direction: messages up to 16 + 24*512 bytes
	cmdMaxLen     = mlxhw.CmdInlineSize + cmdMboxBlocks*mlxhw.MailboxDataSize
	cmdPollMin    = 50 * time.Microsecond
	cmdPollMax    = 5 * time.Millisecond
	cmdSpins      = 64
)

// cmdq is the command interface of one VF.
//
// Ownership: mu serializes exec and guards token, broken and the scratch
// buffers. events and the counters are atomics. done is signalled by the
// worker goroutine on a CMD EQE for slot 0.
type cmdq struct {
	bar     pci.BAR
	clock   kernel.Clock
	gone    <-chan struct{}
	timeout time.Duration
	page    *kernel.Region // the 4 KiB command queue
	dma     *regionDMA     // over mbox
	inAddr  []uint64
	outAddr []uint64
	slot    []byte

	mu     sync.Mutex
	token  uint8
	broken error // a command timed out: slot 0 still belongs to the device
	inBuf  []byte
	outBuf []byte
	blk    []byte

	done   *kernel.Event
	events atomic.Bool

	commands, timeouts, failures atomic.Uint64
}

// newCmdq lays out the command page and the mailbox blocks (1 KiB aligned,
// spec §2.3) in mbox.
func newCmdq(bar pci.BAR, clock kernel.Clock, gone <-chan struct{}, timeout time.Duration,
	page, mbox *kernel.Region, logStride uint8) *cmdq {
	c := &cmdq{bar: bar, clock: clock, gone: gone, timeout: timeout, page: page, dma: newRegionDMA(mbox),
		inBuf: make([]byte, 0, cmdMaxLen), outBuf: make([]byte, cmdMaxLen), blk: make([]byte, mlxhw.MailboxSize),
		done: kernel.NewEvent()}
	off := mlxhw.CmdSlotOffset(cmdSlot, logStride)
	c.slot = page.Bytes[off : off+mlxhw.CmdEntrySize]
	for i := range cmdMboxBlocks {
		c.inAddr = append(c.inAddr, mbox.GPA(i*mlxhw.MailboxAlign))
		c.outAddr = append(c.outAddr, mbox.GPA((cmdMboxBlocks+i)*mlxhw.MailboxAlign))
	}
	return c
}

// cmdMboxPages is the mailbox region size: 2*cmdMboxBlocks 1 KiB blocks.
const cmdMboxPages = 2 * cmdMboxBlocks * mlxhw.MailboxAlign / kernel.PageSize

// exec runs one command and decodes its output into out (nil: a
// header-only output). A nonzero command status is a *mlxhw.StatusError
// wrapped with ErrCommand.
func (c *cmdq) exec(ctx context.Context, in mlxhw.Input, out mlxhw.Output) error {
	op := in.Opcode()
	if out == nil {
		out = &mlxhw.EmptyOut{Op: op}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return fmt.Errorf("mlx: %v: command queue unusable: %w", op, c.broken)
	}
	select {
	case <-c.gone:
		return fmt.Errorf("mlx: %v: %w", op, ErrGone)
	default:
	}
	c.commands.Add(1)
	buf := in.AppendTo(c.inBuf[:0])
	inLen, outLen := len(buf), in.OutLen()
	if inLen < mlxhw.CmdInlineSize || inLen > cmdMaxLen || outLen < mlxhw.CmdInlineSize || outLen > cmdMaxLen {
		return fmt.Errorf("mlx: %v: message of %d/%d bytes exceeds the mailboxes: %w", op, inLen, outLen, ErrConfig)
	}
	if c.token++; c.token == 0 {
		c.token = 1
	}
	tok := c.token
	nIn, nOut := mlxhw.MailboxBlocks(inLen), mlxhw.MailboxBlocks(outLen)
	if err := mlxhw.BuildChain(c.dma, buf, inLen, c.inAddr[:nIn], tok, c.blk); err != nil {
		return fmt.Errorf("mlx: %v: input chain: %w", op, err)
	}
	if err := mlxhw.BuildChain(c.dma, nil, outLen, c.outAddr[:nOut], tok, c.blk); err != nil {
		return fmt.Errorf("mlx: %v: output chain: %w", op, err)
	}
	e := mlxhw.CmdEntry{Type: mlxhw.CmdTypePCIe, InLen: uint32(inLen), OutLen: uint32(outLen), Token: tok}
	copy(e.In[:], buf)
	if nIn > 0 {
		e.InPtr = c.inAddr[0]
	}
	if nOut > 0 {
		e.OutPtr = c.outAddr[0]
	}
	if err := e.Put(c.slot); err != nil {
		return fmt.Errorf("mlx: %v: %w", op, err)
	}
	// status_own last, atomically: token 0x3c, sig 0x3d, rsvd, own 0x3f.
	storeBE32(c.slot, 0x3c, uint32(tok)<<24|mlxhw.CmdOwnerHW)
	c.done.Pending()
	c.bar.Write32(mlxhw.RegCmdDoorbell, 1<<cmdSlot)
	if err := c.wait(ctx); err != nil {
		if errors.Is(err, ErrTimeout) {
			c.timeouts.Add(1)
			c.broken = err
		}
		return fmt.Errorf("mlx: %v: %w", op, err)
	}
	var got mlxhw.CmdEntry
	if err := mlxhw.ParseCmdEntry(c.slot, &got); err != nil {
		return fmt.Errorf("mlx: %v: %w: %w", op, ErrDevice, err)
	}
	if got.Status != mlxhw.DeliveryOK {
		c.failures.Add(1)
		return fmt.Errorf("mlx: %v: %w: delivery status %v", op, ErrCommand, got.Status)
	}
	// The device may not move our pointers or lengths: use what we posted.
	got.OutLen, got.OutPtr, got.Token = uint32(outLen), e.OutPtr, tok
	ob, err := mlxhw.GatherOutput(c.dma, &got, c.outBuf, c.blk)
	if err != nil {
		c.failures.Add(1)
		return fmt.Errorf("mlx: %v: output: %w: %w", op, ErrDevice, err)
	}
	if err := out.Decode(ob); err != nil {
		c.failures.Add(1)
		var se *mlxhw.StatusError
		if errors.As(err, &se) {
			return fmt.Errorf("mlx: %w: %w", ErrCommand, err)
		}
		return fmt.Errorf("mlx: %v: output: %w: %w", op, ErrDevice, err)
	}
	return nil
}

// owned reports whether slot 0 still belongs to the device.
func (c *cmdq) owned() bool { return loadBE32(c.slot, 0x3c)&mlxhw.CmdOwnerHW != 0 }

// wait waits for the device to hand slot 0 back: a few spins (a device
// that completes inside the doorbell write needs none), then sleeps on the
// CMD EQE event or a poll timer, bounded by the timeout, the Gone channel
// and an all-ones register read (surprise removal, spec §4.7).
func (c *cmdq) wait(ctx context.Context) error {
	for range cmdSpins {
		if !c.owned() {
			return nil
		}
		runtime.Gosched()
	}
	deadline := c.clock.NewTimer(c.timeout)
	defer deadline.Stop()
	poll := cmdPollMin
	for {
		if !c.owned() {
			return nil
		}
		if mlxhw.DeviceGone(c.bar.Read32(mlxhw.RegHealthFWVer)) {
			return ErrGone
		}
		if c.events.Load() {
			poll = cmdPollMax
		}
		t := c.clock.NewTimer(poll)
		select {
		case <-c.done.C():
		case <-t.C():
		case <-deadline.C():
			t.Stop()
			if !c.owned() {
				return nil
			}
			return fmt.Errorf("no completion within %v: %w", c.timeout, ErrTimeout)
		case <-c.gone:
			t.Stop()
			return ErrGone
		case <-ctx.Done():
			t.Stop()
			// The device still owns the slot: the queue cannot be reused.
			return fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
		}
		t.Stop()
		if poll < cmdPollMax {
			poll *= 2
		}
	}
}
