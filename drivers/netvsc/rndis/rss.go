package rndis

import (
	"fmt"
	"unicode/utf16"
)

// Sizes of NDIS_RECEIVE_SCALE_CAPABILITIES (packed).
const (
	RSSCapabilitiesSizeRev1 = 16
	RSSCapabilitiesSizeRev2 = 18 // adds the indirection table size
)

// RSS capability flags (cap_flag; Linux NDIS_RSS_CAPS_*, OpenVMM).
const (
	RSSCapHashToeplitz         = 0x00000001 // hash-function bits 0x000000FF
	RSSCapHashTCPIPv4          = 0x00000100
	RSSCapHashTCPIPv6          = 0x00000200
	RSSCapHashTCPIPv6Ex        = 0x00000400
	RSSCapHashUDPIPv4          = 0x00000800
	RSSCapHashUDPIPv6          = 0x00001000
	RSSCapHashUDPIPv6Ex        = 0x00002000
	RSSCapMSI                  = 0x01000000
	RSSCapClassifyAtISR        = 0x02000000
	RSSCapClassifyAtDPC        = 0x04000000
	RSSCapUsingMSIX            = 0x08000000
	RSSCapOnPorts              = 0x10000000
	RSSCapSupportsMSIX         = 0x20000000
	RSSCapIndependentEntryMove = 0x40000000
)

// RSSCapabilitiesHeader is the input header guests send with their query
// of OID_GEN_RECEIVE_SCALE_CAPABILITIES (Linux, FreeBSD).
var RSSCapabilitiesHeader = ObjectHeader{ObjectTypeRSSCapabilities, 2, RSSCapabilitiesSizeRev2}

// RSSCapabilities is NDIS_RECEIVE_SCALE_CAPABILITIES (Linux struct
// ndis_recv_scale_cap, packed):
//
//	off 0   header {0x88, rev, size}
//	off 4   u32 Flags (RSSCap*)
//	off 8   u32 NumInterruptMessages
//	off 12  u32 NumReceiveQueues (= the most channels the guest may use)
//	off 16  u16 NumIndirectionEntries (rev 2; Linux uses it if 1..256, else 128)
type RSSCapabilities struct {
	Header                ObjectHeader
	Flags                 uint32
	NumInterruptMessages  uint32
	NumReceiveQueues      uint32
	NumIndirectionEntries uint16
}

// EncodedLen returns Header.Size (at least the 4 header bytes).
func (c *RSSCapabilities) EncodedLen() int { return max(int(c.Header.Size), ObjectHeaderSize) }

// AppendTo appends the object's Header.Size bytes.
func (c *RSSCapabilities) AppendTo(b []byte) []byte {
	var s [RSSCapabilitiesSizeRev2]byte
	c.Header.put(s[:])
	le.PutUint32(s[4:], c.Flags)
	le.PutUint32(s[8:], c.NumInterruptMessages)
	le.PutUint32(s[12:], c.NumReceiveQueues)
	le.PutUint16(s[16:], c.NumIndirectionEntries)
	return appendSized(b, s[:], c.EncodedLen())
}

// Encode returns AppendTo's bytes in a new slice.
func (c *RSSCapabilities) Encode() []byte { return c.AppendTo(nil) }

// DecodeRSSCapabilities decodes the object at the start of b: type 0x88,
// revision ≥ 1, 16 ≤ size ≤ len(b).
func DecodeRSSCapabilities(b []byte) (*RSSCapabilities, error) {
	h, obj, err := checkObject(b, "NDIS_RECEIVE_SCALE_CAPABILITIES", ObjectTypeRSSCapabilities, RSSCapabilitiesSizeRev1)
	if err != nil {
		return nil, err
	}
	var s [RSSCapabilitiesSizeRev2]byte
	copy(s[:], obj)
	return &RSSCapabilities{h, u32(s[:], 4), u32(s[:], 8), u32(s[:], 12), u16(s[:], 16)}, nil
}

// Hash information bits: RSSParameters.HashInfo and the hash-info
// per-packet info (Linux NDIS_HASH_*, FreeBSD).
const (
	HashFunctionToeplitz = 0x00000001
	HashFunctionMask     = 0x000000FF
	HashIPv4             = 0x00000100
	HashTCPIPv4          = 0x00000200
	HashIPv6             = 0x00000400
	HashIPv6Ex           = 0x00000800
	HashTCPIPv6          = 0x00001000
	HashTCPIPv6Ex        = 0x00002000
	HashUDPIPv4          = 0x00004000
	HashUDPIPv6          = 0x00008000
	HashUDPIPv6Ex        = 0x00010000
	HashTypeMask         = 0x00FFFF00

	// HashInfoLinux is what Linux sets: Toeplitz over IPv4, TCP/IPv4,
	// IPv6, TCP/IPv6.
	HashInfoLinux = HashFunctionToeplitz | HashIPv4 | HashTCPIPv4 | HashIPv6 | HashTCPIPv6
)

// RSS parameter flags (NDIS_RSS_PARAM_FLAG_*).
const (
	RSSParamBaseCPUUnchanged          = 0x0001
	RSSParamHashInfoUnchanged         = 0x0002
	RSSParamIndirectionTableUnchanged = 0x0004
	RSSParamHashKeyUnchanged          = 0x0008
	RSSParamDisableRSS                = 0x0010
	RSSParamDefaultProcUnchanged      = 0x0020 // rev 3
)

const (
	rssParamsFixedRev2 = 40
	rssParamsFixedRev3 = 44
	// RSSHashKeySize is the Toeplitz key size hosts require.
	RSSHashKeySize = 40
	// RSSIndirectionEntries is the table length Linux uses by default.
	RSSIndirectionEntries = 128
)

// DefaultHashKey is the Toeplitz key Linux uses (netvsc_hash_key; the
// Microsoft RSS verification key).
var DefaultHashKey = [RSSHashKeySize]byte{
	0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
	0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
	0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
}

// RSSParameters is NDIS_RECEIVE_SCALE_PARAMETERS, the value of SET
// OID_GEN_RECEIVE_SCALE_PARAMETERS (Linux struct ndis_recv_scale_param,
// FreeBSD ndis_rss_params; natural alignment):
//
//	off 0   header {0x89, rev, size}
//	off 4   u16 Flags
//	off 6   u16 BaseCPUNumber
//	off 8   u32 HashInfo (function | types)
//	off 12  u16 indirection table size in bytes, off 14 padding
//	off 16  u32 indirection table offset (from the start of the object)
//	off 20  u16 hash key size in bytes, off 22 padding
//	off 24  u32 hash key offset (from the start of the object)
//	off 28  u32 ProcessorMasksOffset
//	off 32  u32 NumProcessorMasks
//	off 36  u32 ProcessorMasksEntrySize                   -- end of rev 2 (40)
//	off 40  u32 DefaultProcessorNumber (rev 3)            -- 44
//
// The table (u32 channel indices) and key follow the fixed part; Linux
// puts the table first (at 40) and sets size = 40, FreeBSD puts the key
// first (key at 40, table at 80) and sets size to the whole blob, so
// hosts must honour the offsets. Header is kept as sent; decoding bounds
// table and key by the bytes given, not by Header.Size. Encoding places
// them after the fixed part, key first if KeyFirst.
type RSSParameters struct {
	Header                  ObjectHeader
	Flags                   uint16
	BaseCPUNumber           uint16
	HashInfo                uint32
	IndirectionTable        []uint32
	HashKey                 []byte
	ProcessorMasksOffset    uint32
	NumProcessorMasks       uint32
	ProcessorMasksEntrySize uint32
	DefaultProcessorNumber  uint32 // rev 3 only
	KeyFirst                bool
}

// NewRSSParameters returns the object Linux sends: rev 2, size 40,
// HashInfoLinux, entry i = i % channels over 128 entries, key
// DefaultHashKey.
func NewRSSParameters(channels uint32) *RSSParameters {
	p := &RSSParameters{
		Header:           ObjectHeader{ObjectTypeRSSParameters, 2, rssParamsFixedRev2},
		HashInfo:         HashInfoLinux,
		IndirectionTable: make([]uint32, RSSIndirectionEntries),
		HashKey:          append([]byte(nil), DefaultHashKey[:]...),
	}
	for i := range p.IndirectionTable {
		p.IndirectionTable[i] = uint32(i) % max(channels, 1)
	}
	return p
}

// Disabled reports whether the parameters turn RSS off (the flag, or hash
// function 0, as OpenVMM reads them).
func (p *RSSParameters) Disabled() bool {
	return p.Flags&RSSParamDisableRSS != 0 || p.HashInfo&HashFunctionMask == 0
}

func (p *RSSParameters) fixed() int {
	if p.Header.Revision >= 3 {
		return rssParamsFixedRev3
	}
	return rssParamsFixedRev2
}

func (p *RSSParameters) layout() (tabOff, keyOff int) {
	tabOff, keyOff = p.fixed(), p.fixed()
	if p.KeyFirst {
		tabOff += len(p.HashKey)
	} else {
		keyOff += 4 * len(p.IndirectionTable)
	}
	return tabOff, keyOff
}

// EncodedLen returns the fixed part plus table and key.
func (p *RSSParameters) EncodedLen() int {
	return p.fixed() + 4*len(p.IndirectionTable) + len(p.HashKey)
}

// AppendTo appends the object. Tables over 16383 entries or keys over
// 65535 bytes cannot be expressed; their sizes are truncated.
func (p *RSSParameters) AppendTo(b []byte) []byte {
	tabOff, keyOff := p.layout()
	b = p.Header.AppendTo(b)
	b = le.AppendUint16(le.AppendUint16(b, p.Flags), p.BaseCPUNumber)
	b = le.AppendUint32(b, p.HashInfo)
	b = le.AppendUint32(b, uint32(uint16(4*len(p.IndirectionTable))))
	b = le.AppendUint32(b, uint32(tabOff))
	b = le.AppendUint32(b, uint32(uint16(len(p.HashKey))))
	b = appendU32s(b, uint32(keyOff), p.ProcessorMasksOffset, p.NumProcessorMasks, p.ProcessorMasksEntrySize)
	if p.Header.Revision >= 3 {
		b = le.AppendUint32(b, p.DefaultProcessorNumber)
	}
	if p.KeyFirst {
		b = append(b, p.HashKey...)
	}
	for _, e := range p.IndirectionTable {
		b = le.AppendUint32(b, e)
	}
	if !p.KeyFirst {
		b = append(b, p.HashKey...)
	}
	return b
}

// Encode returns AppendTo's bytes in a new slice.
func (p *RSSParameters) Encode() []byte { return p.AppendTo(nil) }

// DecodeRSSParameters decodes the object in b (a SET's information
// buffer): type 0x89, revision ≥ 1, the fixed part present (40 bytes, 44
// at rev 3), a table size that is a multiple of 4, and table and key
// inside b, after the fixed part. An empty table or key has its offset
// ignored.
func DecodeRSSParameters(b []byte) (*RSSParameters, error) {
	h, err := DecodeObjectHeader(b)
	if err != nil {
		return nil, err
	}
	if h.Type != ObjectTypeRSSParameters || h.Revision == 0 {
		return nil, fmt.Errorf("%w: NDIS_RECEIVE_SCALE_PARAMETERS with type %#x revision %d", ErrObject, h.Type, h.Revision)
	}
	p := &RSSParameters{Header: h}
	if len(b) < p.fixed() {
		return nil, fmt.Errorf("%w: NDIS_RECEIVE_SCALE_PARAMETERS rev %d of %d bytes", ErrShort, h.Revision, len(b))
	}
	p.Flags, p.BaseCPUNumber, p.HashInfo = u16(b, 4), u16(b, 6), u32(b, 8)
	p.ProcessorMasksOffset, p.NumProcessorMasks, p.ProcessorMasksEntrySize = u32(b, 28), u32(b, 32), u32(b, 36)
	if h.Revision >= 3 {
		p.DefaultProcessorNumber = u32(b, 40)
	}
	tabSize, tabOff, keySize, keyOff := u16(b, 12), u32(b, 16), u16(b, 20), u32(b, 24)
	if tabSize%4 != 0 {
		return nil, fmt.Errorf("%w: indirection table of %d bytes", ErrLength, tabSize)
	}
	tab, err := region(b, "indirection table", uint32(tabSize), tabOff, 0, p.fixed())
	if err != nil {
		return nil, err
	}
	if p.HashKey, err = region(b, "hash key", uint32(keySize), keyOff, 0, p.fixed()); err != nil {
		return nil, err
	}
	if len(tab) > 0 {
		p.IndirectionTable = make([]uint32, len(tab)/4)
		for i := range p.IndirectionTable {
			p.IndirectionTable[i] = u32(tab, 4*i)
		}
	}
	p.KeyFirst = len(tab) > 0 && keySize > 0 && keyOff < tabOff
	return p, nil
}

// Config parameter types (RNDIS_CONFIG_PARAM_TYPE_*).
const (
	ConfigParamInteger     = 0
	ConfigParamHexInteger  = 1
	ConfigParamString      = 2
	ConfigParamMultiString = 3
	ConfigParamBinary      = 4

	configParamFixed = 20
)

// ConfigParameter is the value of SET OID_GEN_RNDIS_CONFIG_PARAMETER
// (Linux struct rndis_config_parameter_info), offsets from the start of
// the blob:
//
//	off 0   u32 name offset (20)
//	off 4   u32 name length (bytes)
//	off 8   u32 Type (2 = string)
//	off 12  u32 value offset (after the name)
//	off 16  u32 value length (bytes)
//	off 20  Name (UTF-16LE), then Value
//
// Name and Value are the raw bytes; NameString and ValueString decode
// UTF-16LE. Linux changes the MAC address with name "NetworkAddress" and
// 12 lowercase hex digits (NewMACAddressParameter).
type ConfigParameter struct {
	Name  []byte
	Type  uint32
	Value []byte
}

func utf16le(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = le.AppendUint16(b, u)
	}
	return b
}

func fromUTF16le(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = u16(b, 2*i)
	}
	return string(utf16.Decode(u))
}

// NewStringParameter returns a string-typed parameter.
func NewStringParameter(name, value string) *ConfigParameter {
	return &ConfigParameter{utf16le(name), ConfigParamString, utf16le(value)}
}

// NewMACAddressParameter returns the parameter Linux sets to change the
// MAC address (rndis_filter_set_device_mac).
func NewMACAddressParameter(mac [6]byte) *ConfigParameter {
	return NewStringParameter("NetworkAddress", fmt.Sprintf("%02x%02x%02x%02x%02x%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]))
}

// NameString returns Name decoded from UTF-16LE.
func (p *ConfigParameter) NameString() string { return fromUTF16le(p.Name) }

// ValueString returns Value decoded from UTF-16LE.
func (p *ConfigParameter) ValueString() string { return fromUTF16le(p.Value) }

// EncodedLen returns 20 plus the name and value lengths.
func (p *ConfigParameter) EncodedLen() int { return configParamFixed + len(p.Name) + len(p.Value) }

// AppendTo appends the blob: name at 20, value right after it.
func (p *ConfigParameter) AppendTo(b []byte) []byte {
	b = appendU32s(b, configParamFixed, uint32(len(p.Name)), p.Type, uint32(configParamFixed+len(p.Name)), uint32(len(p.Value)))
	return append(append(b, p.Name...), p.Value...)
}

// Encode returns AppendTo's bytes in a new slice.
func (p *ConfigParameter) Encode() []byte { return p.AppendTo(nil) }

// DecodeConfigParameter decodes the blob in b: the 20-byte fixed part,
// and name and value inside b after it.
func DecodeConfigParameter(b []byte) (*ConfigParameter, error) {
	if len(b) < configParamFixed {
		return nil, fmt.Errorf("%w: config parameter of %d bytes", ErrShort, len(b))
	}
	name, err := region(b, "parameter name", u32(b, 4), u32(b, 0), 0, configParamFixed)
	if err != nil {
		return nil, err
	}
	value, err := region(b, "parameter value", u32(b, 16), u32(b, 12), 0, configParamFixed)
	if err != nil {
		return nil, err
	}
	return &ConfigParameter{name, u32(b, 8), value}, nil
}
