package ifnet

import (
	"bytes"
	"fmt"
	"slices"
)

// Ioctl carries out a request on the interface (stack side). It refuses with
// ErrClaimed while another owner holds a Claim on the interface (FreeBSD's
// "users must not configure the VF directly", enforced): the owner passes
// requests through its Claim instead. Queries (requests that only read,
// see Query) pass a claim. Invalid requests fail with ErrInvalid,
// requests the driver does not implement with ErrNotSupported; none panics.
// Ioctls on one interface are serialized.
func (ifp *Interface) Ioctl(req Request) error { return ifp.ioctl(nil, req) }

// Claim is an owner's exclusive right to configure an interface: hn claims
// its VF so that only hn changes the VF's flags, MTU and offloads.
type Claim struct {
	ifp      *Interface
	owner    string
	released bool // guarded by ifp.mu
}

// Claim makes owner the exclusive configurator of the interface. It fails
// with ErrClaimed if someone else holds a claim, and with ErrDetached on a
// detached interface. It waits for an ioctl in progress, so once it returns
// no direct ioctl can change the interface.
func (ifp *Interface) Claim(owner string) (*Claim, error) {
	if owner == "" {
		return nil, wrapf(ErrInvalid, ifp.name, "claim needs an owner name")
	}
	ifp.ioctlMu.Lock()
	defer ifp.ioctlMu.Unlock()
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	if ifp.Detached() {
		return nil, wrapf(ErrDetached, ifp.name, "claim by %s", owner)
	}
	if ifp.claim != nil {
		return nil, wrapf(ErrClaimed, ifp.name, "claim by %s refused: already claimed by %s", owner, ifp.claim.owner)
	}
	c := &Claim{ifp: ifp, owner: owner}
	ifp.claim = c
	return c, nil
}

// Interface returns the claimed interface.
func (c *Claim) Interface() *Interface { return c.ifp }

// Owner returns the owner name given to Claim.
func (c *Claim) Owner() string { return c.owner }

// Ioctl carries out a request on the claimed interface on behalf of the
// owner. After Release it fails with ErrReleased.
func (c *Claim) Ioctl(req Request) error { return c.ifp.ioctl(c, req) }

// Release gives up the claim; direct ioctls work again. A second Release
// returns ErrReleased. Releasing after the interface detached is fine.
func (c *Claim) Release() error {
	ifp := c.ifp
	ifp.ioctlMu.Lock()
	defer ifp.ioctlMu.Unlock()
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	if c.released {
		return wrapf(ErrReleased, ifp.name, "claim by %s already released", c.owner)
	}
	c.released = true
	if ifp.claim == c {
		ifp.claim = nil
	}
	return nil
}

func (ifp *Interface) ioctl(via *Claim, req Request) error {
	if req == nil || isNilRequest(req) {
		return wrapf(ErrInvalid, ifp.name, "nil ioctl request")
	}
	ifp.ioctlMu.Lock()
	defer ifp.ioctlMu.Unlock()
	if err := ifp.checkAccess(via, req); err != nil {
		return err
	}
	switch r := req.(type) {
	case *SetFlags:
		if err := ifp.callDriver(r); err != nil {
			return err
		}
		ifp.mu.Lock()
		ifp.setFlagsLocked(ifp.Flags()&^UserFlags | r.Flags&UserFlags)
		ifp.mu.Unlock()
	case *SetMTU:
		if r.MTU < ifp.minMTU || r.MTU > ifp.maxMTU {
			return wrapf(ErrInvalid, ifp.name, "SetMTU %d outside [%d, %d]", r.MTU, ifp.minMTU, ifp.maxMTU)
		}
		old := ifp.MTU()
		if r.MTU == old {
			return nil
		}
		if err := ifp.callDriver(r); err != nil {
			return err
		}
		ifp.mu.Lock()
		ifp.mtu.Store(int64(r.MTU))
		ifp.postLocked(Event{Type: EventMTU, OldMTU: old, MTU: r.MTU})
		ifp.mu.Unlock()
	case *AddMulti:
		return ifp.addMulti(r)
	case *DelMulti:
		return ifp.delMulti(r)
	case *SetCapabilities:
		caps := ifp.Capabilities()
		if err := checkCapSet(caps, r.Enable); err != nil {
			return wrapf(ErrInvalid, ifp.name, "SetCapabilities %v: %v", r.Enable, err)
		}
		r.HWAssist = DeriveHWAssist(r.Enable)
		if err := ifp.callDriver(r); err != nil {
			return err
		}
		ifp.mu.Lock()
		r.Enable &= ifp.caps // whatever the driver reports, only supported bits
		ifp.setCapsLocked(CapState{Capabilities: ifp.caps, Enabled: r.Enable, HWAssist: r.HWAssist})
		ifp.mu.Unlock()
	case *GetMedia:
		r.State = ifp.Media()
		return ifp.callDriver(r)
	case *SetMedia:
		if err := ifp.callDriver(r); err != nil {
			return err
		}
		ifp.mu.Lock()
		ifp.media.Current = r.Media
		ifp.mu.Unlock()
	case *SetMAC:
		if err := checkUnicastMAC(r.MAC); err != nil {
			return wrapf(ErrInvalid, ifp.name, "SetMAC: %v", err)
		}
		if err := ifp.callDriver(r); err != nil {
			return err
		}
		ifp.mu.Lock()
		if !bytes.Equal(ifp.mac, r.MAC) {
			ifp.mac = slices.Clone(r.MAC)
			ifp.postLocked(Event{Type: EventMAC, MAC: slices.Clone(r.MAC)})
		}
		ifp.mu.Unlock()
	case *GetRSSKey:
		rss := ifp.RSS()
		r.Func, r.Key = rss.Func, rss.Key
		if err := ifp.callDriver(r); err != nil {
			return err
		}
		if len(r.Key) > MaxRSSKeyLen {
			return wrapf(ErrInvalid, ifp.name, "GetRSSKey: driver returned a %d-byte key", len(r.Key))
		}
	case *GetRSSHash:
		rss := ifp.RSS()
		r.Func, r.Types = rss.Func, rss.Types
		return ifp.callDriver(r)
	default:
		return ifp.callDriver(req)
	}
	return nil
}

// checkAccess enforces detach and ownership. ioctlMu must be held.
func (ifp *Interface) checkAccess(via *Claim, req Request) error {
	ifp.mu.Lock()
	defer ifp.mu.Unlock()
	switch {
	case ifp.Detached():
		return wrapf(ErrDetached, ifp.name, "%s", req.RequestName())
	case via != nil && via.released:
		return wrapf(ErrReleased, ifp.name, "%s through the released claim of %s", req.RequestName(), via.owner)
	case ifp.claim != nil && ifp.claim != via && !IsQuery(req):
		return wrapf(ErrClaimed, ifp.name, "%s refused: interface is claimed by %s; configure it through its owner",
			req.RequestName(), ifp.claim.owner)
	}
	return nil
}

// callDriver runs the driver's Ioctl and adds context to its error.
func (ifp *Interface) callDriver(req Request) error {
	if err := ifp.drv.Ioctl(req); err != nil {
		return fmt.Errorf("%s: %s: %w", ifp.name, req.RequestName(), err)
	}
	return nil
}

func checkMulticastMAC(mac []byte) error {
	if len(mac) != 6 || mac[0]&1 == 0 {
		return errorString(fmt.Sprintf("%x is not a 6-byte multicast address", mac))
	}
	return nil
}

func (ifp *Interface) addMulti(r *AddMulti) error {
	if err := checkMulticastMAC(r.Addr); err != nil {
		return wrapf(ErrInvalid, ifp.name, "AddMulti: %v", err)
	}
	if ifp.Flags()&FlagMulticast == 0 {
		return wrapf(ErrNotSupported, ifp.name, "AddMulti: interface does not support multicast")
	}
	ifp.mu.Lock()
	if i := ifp.findMultiLocked(r.Addr); i >= 0 {
		ifp.multi[i].refs++
		ifp.mu.Unlock()
		return nil
	}
	ifp.mu.Unlock()
	if err := ifp.callDriver(r); err != nil {
		return err
	}
	ifp.mu.Lock()
	ifp.multi = append(ifp.multi, multiEntry{addr: slices.Clone(r.Addr), refs: 1})
	ifp.mu.Unlock()
	return nil
}

func (ifp *Interface) delMulti(r *DelMulti) error {
	if err := checkMulticastMAC(r.Addr); err != nil {
		return wrapf(ErrInvalid, ifp.name, "DelMulti: %v", err)
	}
	ifp.mu.Lock()
	i := ifp.findMultiLocked(r.Addr)
	if i < 0 {
		ifp.mu.Unlock()
		return wrapf(ErrNotFound, ifp.name, "DelMulti: %s not in the multicast list", r.Addr)
	}
	if ifp.multi[i].refs > 1 {
		ifp.multi[i].refs--
		ifp.mu.Unlock()
		return nil
	}
	ifp.mu.Unlock()
	if err := ifp.callDriver(r); err != nil {
		return err
	}
	ifp.mu.Lock()
	// Only ioctls change the list and they are serialized, so i is still valid.
	ifp.multi = slices.Delete(ifp.multi, i, i+1)
	ifp.mu.Unlock()
	return nil
}

func (ifp *Interface) findMultiLocked(addr []byte) int {
	return slices.IndexFunc(ifp.multi, func(m multiEntry) bool { return bytes.Equal(m.addr, addr) })
}

// checkCapSet validates an enabled set against the supported set and the
// dependencies between capabilities.
func checkCapSet(caps, enable Cap) error {
	if extra := enable &^ caps; extra != 0 {
		return errorString("not supported: " + extra.String())
	}
	deps := []struct{ c, needs Cap }{
		{CapTSO4, CapTxCsum},
		{CapTSO6, CapTxCsumIPv6},
		{CapVLANHWCsum, CapVLANHWTagging},
		{CapVLANHWTSO, CapVLANHWTagging},
	}
	for _, d := range deps {
		if enable&d.c != 0 && enable&d.needs == 0 {
			return errorString(d.c.String() + " needs " + d.needs.String())
		}
	}
	return nil
}

// isNilRequest reports a typed nil pointer of one of this package's request
// types, which would otherwise panic when read.
func isNilRequest(req Request) bool {
	switch r := req.(type) {
	case *SetFlags:
		return r == nil
	case *SetMTU:
		return r == nil
	case *AddMulti:
		return r == nil
	case *DelMulti:
		return r == nil
	case *SetCapabilities:
		return r == nil
	case *GetMedia:
		return r == nil
	case *SetMedia:
		return r == nil
	case *SetMAC:
		return r == nil
	case *GetRSSKey:
		return r == nil
	case *GetRSSHash:
		return r == nil
	case *GetReady:
		return r == nil
	}
	return false
}
