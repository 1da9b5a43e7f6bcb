package netvsc

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hvguest/hvguest/drivers/netvsc/nvsp"
	"github.com/hvguest/hvguest/hyperv/vmbus"
	"github.com/hvguest/hvguest/net/ifnet"
)

// VFAssociation is what the host last said about the SR-IOV VF paired with
// this NIC (NVSP 4 SEND_VF_ASSOCIATION; spec/vf-modes.md §1.5, A.2).
type VFAssociation struct {
	// Allocated: a VF is present and Serial names its vPCI slot.
	Allocated bool
	Serial    uint32
	// Generation counts association messages, so a withdrawal followed
	// by a new offer is never mistaken for no change (FreeBSD
	// hn_vf_assoc).
	Generation uint64
}

// DataPath is the data path the host was last told (or told us) to use.
type DataPath = nvsp.DataPath

// vfState is the VF plumbing of one synth (state only: pairing with a VF
// interface comes later).
//
// Ownership: mu guards every field. The receive goroutine updates assoc
// and path from host messages; SwitchDataPath updates path; changed is
// closed and replaced on every association change, for waiters.
type vfState struct {
	mu           sync.Mutex
	assoc        VFAssociation
	path         nvsp.DataPath
	hostSwitches uint64
	changed      chan struct{}
}

func (v *vfState) associate(allocated bool, serial uint32) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.assoc = VFAssociation{Allocated: allocated, Serial: serial, Generation: v.assoc.Generation + 1}
	if v.changed != nil {
		close(v.changed)
		v.changed = nil
	}
}

// hostSwitched records a host-ordered switch (OpenVMM sends SWITCH_DATA_PATH
// synthetic when it yanks a VF that was in use).
func (v *vfState) hostSwitched(p nvsp.DataPath) {
	v.mu.Lock()
	v.path = p
	v.hostSwitches++
	v.mu.Unlock()
}

// VFAssociation returns the host's last VF association message.
func (d *Device) VFAssociation() VFAssociation {
	s := d.synth()
	if s == nil {
		return VFAssociation{}
	}
	s.vf.mu.Lock()
	defer s.vf.mu.Unlock()
	return s.vf.assoc
}

// WaitVFAssociation blocks until an association message with a generation
// above gen arrives (Linux waits for the association before switching to a
// VF that came up first), or ctx ends.
func (d *Device) WaitVFAssociation(ctx context.Context, gen uint64) (VFAssociation, error) {
	for {
		s := d.synth()
		if s == nil {
			return VFAssociation{}, ErrDetached
		}
		s.vf.mu.Lock()
		a := s.vf.assoc
		if a.Generation > gen {
			s.vf.mu.Unlock()
			return a, nil
		}
		if s.vf.changed == nil {
			s.vf.changed = make(chan struct{})
		}
		ch := s.vf.changed
		s.vf.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return a, ctx.Err()
		case <-s.stop:
			return a, ErrDetached
		}
	}
}

// DataPath returns the active data path as last switched.
func (d *Device) DataPath() DataPath {
	s := d.synth()
	if s == nil {
		return nvsp.DataPathSynthetic
	}
	s.vf.mu.Lock()
	defer s.vf.mu.Unlock()
	return s.vf.path
}

// SwitchDataPath tells the host to move the data path to the VF (toVF) or
// back to the synthetic NIC, and waits for the host's (empty) completion,
// retrying a timed-out or ring-full attempt (Linux netvsc_switch_datapath).
// When switching away from the VF the path is marked synthetic before the
// message goes out, as Linux stops using the VF first. It needs NVSP 4.
func (d *Device) SwitchDataPath(ctx context.Context, toVF bool) error {
	s := d.synth()
	if s == nil {
		return ErrDetached
	}
	if s.ver < nvsp.Version4 {
		return fmt.Errorf("netvsc: data-path switch needs NVSP 4, have %s: %w", s.ver, ifnet.ErrNotSupported)
	}
	want := nvsp.DataPathSynthetic
	if toVF {
		want = nvsp.DataPathVF
	}
	if !toVF {
		s.vf.mu.Lock()
		s.vf.path = nvsp.DataPathSynthetic
		s.vf.mu.Unlock()
	}
	msg := nvsp.AppendPadded(nil, &nvsp.SwitchDataPath{DataPath: want}, nvsp.GuestMessageSize)
	var err error
	for try := 0; try <= s.cfg.SwitchRetries; try++ {
		rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		_, err = s.ch.Request(rctx, msg)
		cancel()
		if err == nil {
			s.vf.mu.Lock()
			s.vf.path = want
			s.vf.mu.Unlock()
			return nil
		}
		if ctx.Err() != nil || !(errors.Is(err, vmbus.ErrTimeout) || errors.Is(err, vmbus.ErrRingFull) ||
			errors.Is(err, vmbus.ErrNoTransID) || errors.Is(err, context.DeadlineExceeded)) {
			break
		}
	}
	return fmt.Errorf("netvsc: SWITCH_DATA_PATH %d: %w", want, err)
}
