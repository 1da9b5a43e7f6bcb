package vmbusmsg

import "testing"

func TestVersions(t *testing.T) {
	// Values: Linux include/linux/hyperv.h VERSION_*; OpenVMM Version.
	for v, want := range map[Version]uint32{
		VersionWS2008: 0xD, VersionWin7: 0x10001, VersionWin8: 0x20004, VersionWin8_1: 0x30000,
		VersionWin10: 0x40000, VersionWin10V4_1: 0x40001, VersionWin10V5: 0x50000,
		VersionWin10V5_1: 0x50001, VersionWin10V5_2: 0x50002, VersionWin10V5_3: 0x50003, VersionWin10V6_0: 0x60000,
	} {
		if uint32(v) != want || !v.Known() || MakeVersion(v.Major(), v.Minor()) != v {
			t.Errorf("%v", v)
		}
	}
	if VersionWin10V5_3.String() != "5.3 (WIN10_V5_3)" || Version(0x70000).String() != "7.0" || VersionWS2008.String() != "0.13 (WS2008)" {
		t.Fatal(VersionWin10V5_3.String())
	}
	order := GuestVersions()
	if order[0] != VersionWin10V6_0 || order[len(order)-1] != VersionWin8 || len(order) != 9 {
		t.Fatal(order)
	}
	for i := 1; i < len(order); i++ {
		if order[i] >= order[i-1] {
			t.Fatal("not newest first")
		}
	}
	order[0] = 0
	if GuestVersions()[0] != VersionWin10V6_0 {
		t.Fatal("GuestVersions shares its slice")
	}
	if len(AllVersions()) != 11 {
		t.Fatal("all versions")
	}
	for v, conn := range map[Version]uint32{VersionWin8: 1, VersionWin10V4_1: 1, VersionWin10V5: 4, VersionWin10V6_0: 4} {
		if v.InitiateContactConnectionID() != conn {
			t.Errorf("%v conn %d", v, v.InitiateContactConnectionID())
		}
	}
	if !VersionWin10V6_0.HasFeatureFlags() || VersionWin10V5_3.HasFeatureFlags() {
		t.Fatal("feature flags")
	}
}

func TestFeatureFlags(t *testing.T) {
	f := FeatureClientID | FeaturePauseResume | 0x100
	if f.String() != "client-id|pause-resume|0x100" || !f.Has(FeatureClientID) || f.Has(FeatureGPAPinning) {
		t.Fatal(f.String())
	}
	if ConnectionFailedLowResources.String() != "failed-low-resources" || ConnectionState(9).String() != "connection-state(9)" {
		t.Fatal("state names")
	}
}
