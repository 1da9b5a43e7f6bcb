package tapdev

import (
	"golang.org/x/sys/unix"

	"github.com/hvguest/hvguest/net/packet"
)

// ReadBatch reads frames from the non-blocking TAP fd into buffers from
// pool until the TAP has nothing more or bt is full. When the pool is
// empty a frame is read into a one-byte scratch and discarded (so poll
// does not spin) and counted in noBuf. readErr reports a read failure
// other than EAGAIN/EINTR; frames read before it stay in bt. Nothing is
// allocated per frame.
func ReadBatch(fd int, pool *packet.Pool, bt *packet.Batch) (noBuf int, readErr error) {
	for !bt.Full() {
		p := pool.Get()
		if p == nil {
			var scratch [1]byte
			if _, err := unix.Read(fd, scratch[:]); err != nil {
				return noBuf, nil
			}
			noBuf++
			continue
		}
		buf, _ := p.Append(p.Tailroom())
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			p.Free()
			if err != nil && err != unix.EAGAIN && err != unix.EINTR {
				return noBuf, err
			}
			return noBuf, nil
		}
		_ = p.TrimBack(len(buf) - n)
		bt.Add(p)
	}
	return noBuf, nil
}
