package ifnet

import (
	"errors"
	"fmt"
)

// Sentinel errors of this package. Every error returned by ifnet wraps one of
// them with context; test with errors.Is. Drivers should wrap these too, so
// that a request forwarded through several interfaces (hn to its VF) keeps
// its meaning.
var (
	// ErrNotSupported: the request or operation is not implemented by this
	// interface or its driver (EOPNOTSUPP).
	ErrNotSupported = errors.New("ifnet: not supported")
	// ErrInvalid: a request or argument is malformed or out of range (EINVAL).
	ErrInvalid = errors.New("ifnet: invalid argument")
	// ErrBusy: the interface cannot take the request now; retry later
	// (EBUSY/EAGAIN), or a transmit queue is full.
	ErrBusy = errors.New("ifnet: busy")
	// ErrClaimed: the interface is claimed by another owner; configure it
	// through that owner's Claim.
	ErrClaimed = errors.New("ifnet: interface claimed by another owner")
	// ErrNotFound: no such interface, multicast address, subscription, ...
	ErrNotFound = errors.New("ifnet: not found")
	// ErrExists: the name or index is already in use.
	ErrExists = errors.New("ifnet: already exists")
	// ErrDetached: the interface has been detached; it is gone for good (ENXIO).
	ErrDetached = errors.New("ifnet: interface detached")
	// ErrDown: the interface is not up and running, or its link is down
	// (ENETDOWN).
	ErrDown = errors.New("ifnet: interface down")
	// ErrReleased: the claim or input override handle was already released.
	ErrReleased = errors.New("ifnet: handle already released")
	// ErrClosed: the registry has been closed.
	ErrClosed = errors.New("ifnet: registry closed")
)

// Preallocated errors for the data path, which must not allocate.
var (
	errTxDown     = fmt.Errorf("%w: transmit on an interface that is not up and running", ErrDown)
	errTxDetached = fmt.Errorf("%w: transmit", ErrDetached)
)

// wrapf wraps a sentinel with the interface name and a message.
func wrapf(sentinel error, ifname, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if ifname == "" {
		return fmt.Errorf("%w: %s", sentinel, msg)
	}
	return fmt.Errorf("%s: %w: %s", ifname, sentinel, msg)
}
