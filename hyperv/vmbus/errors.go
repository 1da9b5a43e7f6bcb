package vmbus

import "errors"

// Errors of the VMBus client, wrapped with context.
var (
	ErrClosed       = errors.New("vmbus: closed")
	ErrRescinded    = errors.New("vmbus: channel rescinded by the host")
	ErrTimeout      = errors.New("vmbus: timed out waiting for the host")
	ErrBusy         = errors.New("vmbus: request already in flight")
	ErrNoVersion    = errors.New("vmbus: host accepted none of the protocol versions")
	ErrRefused      = errors.New("vmbus: host refused the request")
	ErrProtocol     = errors.New("vmbus: host broke the protocol")
	ErrState        = errors.New("vmbus: not allowed in this state")
	ErrRingFull     = errors.New("vmbus: ring full")
	ErrTooLarge     = errors.New("vmbus: packet larger than the ring allows")
	ErrNoTransID    = errors.New("vmbus: no free transaction id")
	ErrUnknownReply = errors.New("vmbus: completion for no outstanding request")
)
