package tlfs

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// GUID is a 16-byte GUID in Windows wire order, as VMBus carries it in
// offers and as Linux stores guid_t: Data1 (u32), Data2 (u16) and Data3
// (u16) little-endian, then Data4's 8 bytes as written. The text form
// "f8615163-df3e-46c5-913f-f2d2f965ed0e" prints Data1..Data3 as numbers,
// so its first three groups appear byte-reversed on the wire (Linux
// GUID_INIT and %pUl; spec §6).
type GUID [16]byte

// ParseGUID parses "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (either case,
// optionally in braces) into wire order.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) == 38 && s[0] == '{' && s[37] == '}' {
		s = s[1:37]
	}
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("%w: %q", ErrGUID, s)
	}
	var raw [16]byte // in text (big-endian) order
	hexs := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if _, err := hex.Decode(raw[:], []byte(hexs)); err != nil {
		return g, fmt.Errorf("%w: %q", ErrGUID, s)
	}
	binary.LittleEndian.PutUint32(g[0:], binary.BigEndian.Uint32(raw[0:]))
	binary.LittleEndian.PutUint16(g[4:], binary.BigEndian.Uint16(raw[4:]))
	binary.LittleEndian.PutUint16(g[6:], binary.BigEndian.Uint16(raw[6:]))
	copy(g[8:], raw[8:])
	return g, nil
}

// MustParseGUID is ParseGUID for constants; it panics on malformed text.
func MustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// NewGUID builds a GUID from its fields as written in C (GUID_INIT).
func NewGUID(d1 uint32, d2, d3 uint16, d4 [8]byte) GUID {
	var g GUID
	binary.LittleEndian.PutUint32(g[0:], d1)
	binary.LittleEndian.PutUint16(g[4:], d2)
	binary.LittleEndian.PutUint16(g[6:], d3)
	copy(g[8:], d4[:])
	return g
}

// Data1, Data2, Data3 return the numeric fields.
func (g GUID) Data1() uint32 { return binary.LittleEndian.Uint32(g[0:]) }
func (g GUID) Data2() uint16 { return binary.LittleEndian.Uint16(g[4:]) }
func (g GUID) Data3() uint16 { return binary.LittleEndian.Uint16(g[6:]) }

// IsZero reports whether g is the nil GUID.
func (g GUID) IsZero() bool { return g == GUID{} }

// String returns the lowercase 8-4-4-4-12 text form.
func (g GUID) String() string { return string(g.appendText(make([]byte, 0, 36))) }

func (g GUID) appendText(b []byte) []byte {
	var be [16]byte
	binary.BigEndian.PutUint32(be[0:], g.Data1())
	binary.BigEndian.PutUint16(be[4:], g.Data2())
	binary.BigEndian.PutUint16(be[6:], g.Data3())
	copy(be[8:], g[8:])
	b = hex.AppendEncode(b, be[0:4])
	b = append(b, '-')
	b = hex.AppendEncode(b, be[4:6])
	b = append(b, '-')
	b = hex.AppendEncode(b, be[6:8])
	b = append(b, '-')
	b = hex.AppendEncode(b, be[8:10])
	b = append(b, '-')
	return hex.AppendEncode(b, be[10:16])
}

// AppendText implements encoding.TextAppender.
func (g GUID) AppendText(b []byte) ([]byte, error) { return g.appendText(b), nil }

// MarshalText implements encoding.TextMarshaler.
func (g GUID) MarshalText() ([]byte, error) { return g.appendText(nil), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (g *GUID) UnmarshalText(b []byte) error {
	v, err := ParseGUID(string(b))
	if err != nil {
		return err
	}
	*g = v
	return nil
}

// Hex returns the 32 hex digits of the wire bytes, the form Linux puts
// after "vmbus:" in a device's modalias.
func (g GUID) Hex() string { return hex.EncodeToString(g[:]) }

// VMBus device class GUIDs: the interface type (if_type) of channel
// offers. Linux include/linux/hyperv.h HV_*_GUID; spec §6.
var (
	GUIDNetwork        = MustParseGUID("f8615163-df3e-46c5-913f-f2d2f965ed0e") // netvsc (hn)
	GUIDPCIPassthrough = MustParseGUID("44c4f61d-4444-4400-9d52-802e27ede19f") // vPCI
	GUIDSCSI           = MustParseGUID("ba6163d9-04a1-4d29-b605-72e2ffb1dc7f")
	GUIDIDE            = MustParseGUID("32412632-86cb-44a2-9b5c-50d1417354f5")
	GUIDSyntheticFC    = MustParseGUID("2f9bcc4a-0069-4af3-b76b-6fd0be528cda")
	GUIDNetworkDirect  = MustParseGUID("8c2eaf3d-32a7-4b09-ab99-bd1f1c86b501")
	GUIDShutdown       = MustParseGUID("0e0b6031-5213-4934-818b-38d90ced39db")
	GUIDTimeSync       = MustParseGUID("9527e630-d0ae-497b-adce-e80ab0175caf")
	GUIDHeartbeat      = MustParseGUID("57164f39-9115-4e78-ab55-382f3bd5422d")
	GUIDKVP            = MustParseGUID("a9a0f4e7-5a45-4d96-b827-8a841e8c03e6")
	GUIDVSS            = MustParseGUID("35fa2e29-ea23-4236-96ae-3a6ebacba440")
	GUIDFileCopy       = MustParseGUID("34d14be3-dee4-41c8-9ae7-6b174977c192")
	GUIDDynamicMemory  = MustParseGUID("525074dc-8985-46e2-8057-a307dc18a502")
	GUIDSyntheticVideo = MustParseGUID("da0a7802-e377-4aac-8e77-0558eb1073f8")
	GUIDKeyboard       = MustParseGUID("f912ad6d-2b17-48ea-bd65-f927a61c7684")
	GUIDMouse          = MustParseGUID("cfa8b69e-5b4a-4cc0-b98b-8ba1a1f3f95a")
	GUIDAVMA1          = MustParseGUID("f8e65716-3cb3-4a06-9a60-1889c5cccab5")
	GUIDAVMA2          = MustParseGUID("3375baf4-9e15-4b30-b765-67acb10d607b")
	GUIDRDV            = MustParseGUID("276aacf4-ac15-426c-98dd-7521ad3f01fe")
	GUIDIMC            = MustParseGUID("c376c1c3-d276-48d2-90a9-c04748072c60")
)

// DeviceClass names a VMBus device class GUID.
type DeviceClass struct {
	Name string
	GUID GUID
}

// DeviceClasses lists the well-known classes, in spec §6 order.
var DeviceClasses = []DeviceClass{
	{"network", GUIDNetwork},
	{"pci", GUIDPCIPassthrough},
	{"scsi", GUIDSCSI},
	{"ide", GUIDIDE},
	{"fc", GUIDSyntheticFC},
	{"networkdirect", GUIDNetworkDirect},
	{"shutdown", GUIDShutdown},
	{"timesync", GUIDTimeSync},
	{"heartbeat", GUIDHeartbeat},
	{"kvp", GUIDKVP},
	{"vss", GUIDVSS},
	{"filecopy", GUIDFileCopy},
	{"dynmem", GUIDDynamicMemory},
	{"video", GUIDSyntheticVideo},
	{"keyboard", GUIDKeyboard},
	{"mouse", GUIDMouse},
	{"avma1", GUIDAVMA1},
	{"avma2", GUIDAVMA2},
	{"rdv", GUIDRDV},
	{"imc", GUIDIMC},
}

// DeviceClassName returns the short name of a well-known class GUID, or ""
// for any other GUID.
func DeviceClassName(g GUID) string {
	for _, c := range DeviceClasses {
		if c.GUID == g {
			return c.Name
		}
	}
	return ""
}
