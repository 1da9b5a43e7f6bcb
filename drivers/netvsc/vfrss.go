package netvsc

import (
	"bytes"
	"context"

	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/net/ifnet"
	"github.com/hvguest/hvguest/net/packet"
)

// RSS alignment with the VF (FreeBSD hn_vf_rss_fixup / hn_vf_rss_restore,
// spec/vf-modes.md §1.7): so that one flow hashes the same on both paths,
// hn takes the VF's Toeplitz key and the hash types both sides support,
// and puts its own back when the VF leaves. Nothing to do with one
// channel. cfgMu held.

// rssTypeBits maps ifnet RSS types to RNDIS hash-info bits.
var rssTypeBits = []struct {
	bit uint32
	t   ifnet.RSSTypes
}{{rndis.HashIPv4, ifnet.RSSIPv4}, {rndis.HashTCPIPv4, ifnet.RSSTCPv4}, {rndis.HashUDPIPv4, ifnet.RSSUDPv4},
	{rndis.HashIPv6, ifnet.RSSIPv6}, {rndis.HashTCPIPv6, ifnet.RSSTCPv6}, {rndis.HashUDPIPv6, ifnet.RSSUDPv6},
	{rndis.HashIPv6Ex, ifnet.RSSIPv6Ex}, {rndis.HashTCPIPv6Ex, ifnet.RSSTCPv6Ex}, {rndis.HashUDPIPv6Ex, ifnet.RSSUDPv6Ex}}

func rssTypes(info uint32) ifnet.RSSTypes {
	var t ifnet.RSSTypes
	for _, m := range rssTypeBits {
		if info&m.bit != 0 {
			t |= m.t
		}
	}
	return t
}

func rssInfo(t ifnet.RSSTypes) uint32 {
	var info uint32
	for _, m := range rssTypeBits {
		if t&m.t != 0 {
			info |= m.bit
		}
	}
	return info
}

// hashDeliveryOff says which hash types synthetic receive must not
// deliver while the VF is active (FreeBSD hn_vf_rss_fixup's mbuf-hash
// rules): an opaque hash never matches the VF's; where the VF hashes a
// packet over more fields than hn now does (UDP/TCP over IPv4 against
// IPv4, the IPv6 4-tuples and EX variants against IPv6, TCP/UDP over IPv6
// against their EX forms), hn's value for that packet would differ from
// the VF's.
func hashDeliveryOff(vf, hn ifnet.RSSTypes) uint32 {
	off := uint32(1) << packet.HashOpaque
	miss := vf &^ hn
	if miss&(ifnet.RSSTCPv4|ifnet.RSSUDPv4) != 0 {
		off |= 1 << packet.HashIPv4
	}
	if miss&(ifnet.RSSTCPv6|ifnet.RSSUDPv6|ifnet.RSSIPv6Ex|ifnet.RSSTCPv6Ex|ifnet.RSSUDPv6Ex) != 0 {
		off |= 1 << packet.HashIPv6
	}
	if miss&ifnet.RSSIPv6Ex != 0 {
		off |= 1 << packet.HashIPv6Ex
	}
	if miss&ifnet.RSSTCPv6Ex != 0 {
		off |= 1 << packet.HashTCPv6
	}
	if miss&ifnet.RSSUDPv6Ex != 0 {
		off |= 1 << packet.HashUDPv6
	}
	return off
}

// hashAllOff: no hash delivered (the paths could not be aligned).
const hashAllOff = ^uint32(0) &^ (1 << packet.HashNone)

func (m *vfMgr) rssFixup() {
	w := &m.w
	s := m.d.syn
	if s == nil {
		return
	}
	m.hashOff.Store(1 << packet.HashOpaque)
	cur := s.rss.params.Load()
	if cur == nil {
		return
	}
	var k ifnet.GetRSSKey
	if err := m.vfIoctl(&k); err != nil || k.Func != ifnet.RSSFuncToeplitz || len(k.Key) != rndis.RSSHashKeySize {
		m.d.log.Debug("netvsc: VF RSS key not usable", "vf", w.vf.Name(), "func", k.Func, "keylen", len(k.Key), "err", err)
		m.hashOff.Store(hashAllOff)
		return
	}
	var h ifnet.GetRSSHash
	if err := m.vfIoctl(&h); err != nil || h.Func != ifnet.RSSFuncToeplitz {
		m.d.log.Debug("netvsc: VF RSS hash not usable", "vf", w.vf.Name(), "func", h.Func, "err", err)
		m.hashOff.Store(hashAllOff)
		return
	}
	orig := cur
	if w.rssOrig != nil && w.rssSyn == s {
		orig = w.rssOrig
	}
	inter := h.Types & rssTypes(orig.HashInfo)
	if inter == 0 {
		m.d.log.Warn("netvsc: intersection of RSS types failed", "vf", w.vf.Name(), "vf_types", h.Types.String())
		m.hashOff.Store(hashAllOff)
		return
	}
	off := hashDeliveryOff(h.Types, inter)
	p := *cur
	p.HashKey = bytes.Clone(k.Key)
	p.HashInfo = cur.HashInfo&rndis.HashFunctionMask | rssInfo(inter)
	if bytes.Equal(p.HashKey, cur.HashKey) && p.HashInfo == cur.HashInfo {
		m.hashOff.Store(off)
		return
	}
	if err := s.set(context.Background(), rndis.OIDGenReceiveScaleParameters, p.Encode()); err != nil {
		m.fail("align RSS with VF", w.vf, err)
		m.hashOff.Store(hashAllOff) // V2026: nothing delivered when reconfiguration fails
		return
	}
	m.hashOff.Store(off)
	if w.rssOrig == nil || w.rssSyn != s {
		w.rssOrig, w.rssSyn = cur, s
	}
	s.rss.params.Store(&p)
	_ = m.d.iface().SetRSS(s.rssConfig())
}

func (m *vfMgr) rssRestore() {
	m.hashOff.Store(0)
	w := &m.w
	s, orig, of := m.d.syn, w.rssOrig, w.rssSyn
	w.rssOrig, w.rssSyn = nil, nil
	if s == nil || orig == nil || of != s {
		return
	}
	if err := s.set(context.Background(), rndis.OIDGenReceiveScaleParameters, orig.Encode()); err != nil {
		m.d.log.Warn("netvsc: restore RSS parameters", "err", err)
	}
	s.rss.params.Store(orig)
	_ = m.d.iface().SetRSS(s.rssConfig())
}
