package netvsc

import (
	"bytes"
	"context"

	"github.com/hvguest/hvguest/drivers/netvsc/rndis"
	"github.com/hvguest/hvguest/net/ifnet"
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

func (m *vfMgr) rssFixup() {
	w := &m.w
	s := m.d.syn
	if s == nil {
		return
	}
	cur := s.rss.params.Load()
	if cur == nil {
		return
	}
	var k ifnet.GetRSSKey
	if err := m.vfIoctl(&k); err != nil || k.Func != ifnet.RSSFuncToeplitz || len(k.Key) != rndis.RSSHashKeySize {
		m.d.log.Debug("netvsc: VF RSS key not usable", "vf", w.vf.Name(), "func", k.Func, "keylen", len(k.Key), "err", err)
		return
	}
	var h ifnet.GetRSSHash
	if err := m.vfIoctl(&h); err != nil || h.Func != ifnet.RSSFuncToeplitz {
		m.d.log.Debug("netvsc: VF RSS hash not usable", "vf", w.vf.Name(), "func", h.Func, "err", err)
		return
	}
	orig := cur
	if w.rssOrig != nil && w.rssSyn == s {
		orig = w.rssOrig
	}
	inter := h.Types & rssTypes(orig.HashInfo)
	if inter == 0 {
		m.d.log.Warn("netvsc: intersection of RSS types failed", "vf", w.vf.Name(), "vf_types", h.Types.String())
		return
	}
	p := *cur
	p.HashKey = bytes.Clone(k.Key)
	p.HashInfo = cur.HashInfo&rndis.HashFunctionMask | rssInfo(inter)
	if bytes.Equal(p.HashKey, cur.HashKey) && p.HashInfo == cur.HashInfo {
		return
	}
	if err := s.set(context.Background(), rndis.OIDGenReceiveScaleParameters, p.Encode()); err != nil {
		m.fail("align RSS with VF", w.vf, err)
		return
	}
	if w.rssOrig == nil || w.rssSyn != s {
		w.rssOrig, w.rssSyn = cur, s
	}
	s.rss.params.Store(&p)
	_ = m.d.iface().SetRSS(s.rssConfig())
}

func (m *vfMgr) rssRestore() {
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
