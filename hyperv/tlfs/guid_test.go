package tlfs

import (
	"encoding/json"
	"errors"
	"testing"
)

// Golden: Linux include/linux/hyperv.h HV_NIC_GUID (older kernels spell the
// bytes out: 0x63, 0x51, 0x61, 0xf8, 0x3e, 0xdf, 0xc5, 0x46, 0x91, 0x3f,
// 0xf2, 0xd2, 0xf9, 0x65, 0xed, 0x0e; newer ones use GUID_INIT with the
// same fields).
func TestGoldenNetvscGUID(t *testing.T) {
	want := GUID{0x63, 0x51, 0x61, 0xf8, 0x3e, 0xdf, 0xc5, 0x46, 0x91, 0x3f, 0xf2, 0xd2, 0xf9, 0x65, 0xed, 0x0e}
	g, err := ParseGUID("f8615163-df3e-46c5-913f-f2d2f965ed0e")
	if err != nil || g != want || GUIDNetwork != want {
		t.Fatalf("%x %v", g[:], err)
	}
	if NewGUID(0xf8615163, 0xdf3e, 0x46c5, [8]byte{0x91, 0x3f, 0xf2, 0xd2, 0xf9, 0x65, 0xed, 0x0e}) != want {
		t.Fatal("NewGUID")
	}
	if g.String() != "f8615163-df3e-46c5-913f-f2d2f965ed0e" || g.Data1() != 0xf8615163 || g.Data2() != 0xdf3e || g.Data3() != 0x46c5 {
		t.Fatal(g.String())
	}
	if g.Hex() != "635161f83edfc546913ff2d2f965ed0e" {
		t.Fatal(g.Hex())
	}
}

// Wire bytes from spec §6 (checked against Linux HV_*_GUID).
func TestDeviceClassWireBytes(t *testing.T) {
	for g, hexWire := range map[GUID]string{
		GUIDPCIPassthrough: "1df6c444444400449d52802e27ede19f",
		GUIDSCSI:           "d96361baa104294db60572e2ffb1dc7f",
		GUIDIDE:            "32264132cb86a2449b5c50d1417354f5",
		GUIDKVP:            "e7f4a0a9455a964db8278a841e8c03e6",
		GUIDMouse:          "9eb6a8cf4a5bc04cb98b8ba1a1f3f95a",
	} {
		if g.Hex() != hexWire {
			t.Errorf("%v: %s want %s", g, g.Hex(), hexWire)
		}
	}
	seen := map[GUID]bool{}
	for _, c := range DeviceClasses {
		if seen[c.GUID] || c.GUID.IsZero() || DeviceClassName(c.GUID) != c.Name {
			t.Errorf("class %s", c.Name)
		}
		seen[c.GUID] = true
	}
	if DeviceClassName(GUID{1}) != "" {
		t.Fatal("unknown class named")
	}
}

func TestGUIDText(t *testing.T) {
	g, err := ParseGUID("{44C4F61D-4444-4400-9D52-802E27EDE19F}")
	if err != nil || g != GUIDPCIPassthrough {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "44c4f61d-4444-4400-9d52-802e27ede19", "44c4f61d:4444-4400-9d52-802e27ede19f", "g4c4f61d-4444-4400-9d52-802e27ede19f", "{44c4f61d-4444-4400-9d52-802e27ede19f"} {
		if _, err := ParseGUID(bad); !errors.Is(err, ErrGUID) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	type doc struct{ Class GUID }
	j, err := json.Marshal(doc{GUIDNetwork})
	if err != nil || string(j) != `{"Class":"f8615163-df3e-46c5-913f-f2d2f965ed0e"}` {
		t.Fatal(string(j), err)
	}
	var d doc
	if err := json.Unmarshal(j, &d); err != nil || d.Class != GUIDNetwork {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(`{"Class":"nope"}`), &d); !errors.Is(err, ErrGUID) {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("MustParseGUID accepted junk")
		}
	}()
	MustParseGUID("x")
}

func FuzzParseGUID(f *testing.F) {
	f.Add("f8615163-df3e-46c5-913f-f2d2f965ed0e")
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGUID(s)
		if err != nil {
			return
		}
		g2, err := ParseGUID(g.String())
		if err != nil || g2 != g {
			t.Fatalf("%q -> %v", s, g)
		}
	})
}
