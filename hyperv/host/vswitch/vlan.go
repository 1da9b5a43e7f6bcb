package vswitch

import (
	"errors"
	"fmt"
)

// DefaultVLAN is the VLAN an access port joins when its VLANConfig is the
// zero value.
const DefaultVLAN = 1

// MaxVLAN is the largest usable VLAN ID (4095 is reserved).
const MaxVLAN = 4094

// VLANConfig is a port's VLAN mode. The zero value is an access port on
// DefaultVLAN.
type VLANConfig struct {
	// Trunk makes the port a trunk; otherwise it is an access port.
	Trunk bool
	// Access is the access port's VLAN (0: DefaultVLAN).
	Access uint16
	// Native is the trunk's native VLAN: untagged frames join it, and its
	// frames leave untagged. 0: the trunk drops untagged frames.
	Native uint16
	// Allowed lists the VLANs a trunk carries tagged; empty: all of them.
	Allowed []uint16
}

// Access returns the configuration of an access port on vid.
func Access(vid uint16) VLANConfig { return VLANConfig{Access: vid} }

// Trunk returns the configuration of a trunk port with native VLAN native
// (0: none) carrying the allowed VLANs (none listed: all).
func Trunk(native uint16, allowed ...uint16) VLANConfig {
	return VLANConfig{Trunk: true, Native: native, Allowed: allowed}
}

var errVLAN = errors.New("vswitch: bad VLAN configuration")

// vlanConfig is a VLANConfig compiled for the data path.
type vlanConfig struct {
	cfg     VLANConfig
	trunk   bool
	access  uint16
	native  uint16
	all     bool
	allowed [4096 / 64]uint64
}

func (c VLANConfig) compile() (*vlanConfig, error) {
	vc := &vlanConfig{cfg: c, trunk: c.Trunk}
	if !c.Trunk {
		vc.access = c.Access
		if vc.access == 0 {
			vc.access = DefaultVLAN
		}
		if vc.access > MaxVLAN {
			return nil, fmt.Errorf("%w: access VLAN %d", errVLAN, c.Access)
		}
		vc.cfg.Allowed = nil
		return vc, nil
	}
	if c.Native > MaxVLAN {
		return nil, fmt.Errorf("%w: native VLAN %d", errVLAN, c.Native)
	}
	vc.native = c.Native
	vc.all = len(c.Allowed) == 0
	for _, v := range c.Allowed {
		if v == 0 || v > MaxVLAN {
			return nil, fmt.Errorf("%w: allowed VLAN %d", errVLAN, v)
		}
		vc.allowed[v/64] |= 1 << (v % 64)
	}
	vc.cfg.Allowed = append([]uint16(nil), c.Allowed...)
	return vc, nil
}

// member reports whether the port carries vid.
func (vc *vlanConfig) member(vid uint16) bool {
	if !vc.trunk {
		return vid == vc.access
	}
	if vid == vc.native && vid != 0 {
		return true
	}
	return vc.all || vc.allowed[vid/64]&(1<<(vid%64)) != 0
}

// ingress returns the VLAN an arriving frame belongs to, given its tag
// (tagged false or vid 0: untagged), and whether the port accepts it.
func (vc *vlanConfig) ingress(tagged bool, vid uint16) (uint16, bool) {
	if vid == 0 {
		tagged = false
	}
	if !vc.trunk {
		if tagged && vid != vc.access {
			return 0, false
		}
		return vc.access, true
	}
	if !tagged {
		return vc.native, vc.native != 0
	}
	if vid > MaxVLAN {
		return 0, false
	}
	return vid, vc.member(vid)
}

// untaggedEgress reports whether frames of vid leave the port untagged.
func (vc *vlanConfig) untaggedEgress(vid uint16) bool {
	if !vc.trunk {
		return true
	}
	return vid == vc.native
}
