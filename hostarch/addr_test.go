package hostarch

import (
	"math"
	"testing"
)

func TestAddrArithmetic(t *testing.T) {
	const max = ^Addr(0)
	for _, tc := range []struct {
		name      string
		v         Addr
		length    uint64
		end       Addr
		ok        bool
		roundDown Addr
		roundUp   Addr
		upOK      bool
		pageOff   uint64
	}{
		{"zero", 0, 0, 0, true, 0, 0, true, 0},
		{"page", 0x1000, 0x1000, 0x2000, true, 0x1000, 0x1000, true, 0},
		{"unaligned", 0x1001, 1, 0x1002, true, 0x1000, 0x2000, true, 1},
		{"last byte", max - 1, 1, max, true, max &^ 0xfff, 0, false, 0xffe},
		{"overflow", max, 1, 0, false, max &^ 0xfff, 0, false, 0xfff},
		{"huge length", 1, math.MaxUint64, 0, false, 0, 0x1000, true, 1},
		{"last page", max &^ 0xfff, 0x1000, 0, false, max &^ 0xfff, max &^ 0xfff, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			end, ok := tc.v.AddLength(tc.length)
			if ok != tc.ok || (ok && end != tc.end) {
				t.Errorf("AddLength(%#x) = %#x, %v; want %#x, %v", tc.length, end, ok, tc.end, tc.ok)
			}
			if got := tc.v.RoundDown(); got != tc.roundDown {
				t.Errorf("RoundDown = %#x, want %#x", got, tc.roundDown)
			}
			up, upOK := tc.v.RoundUp()
			if upOK != tc.upOK || (upOK && up != tc.roundUp) {
				t.Errorf("RoundUp = %#x, %v; want %#x, %v", up, upOK, tc.roundUp, tc.upOK)
			}
			if got := tc.v.PageOffset(); got != tc.pageOff {
				t.Errorf("PageOffset = %#x, want %#x", got, tc.pageOff)
			}
			if got := tc.v.IsPageAligned(); got != (tc.pageOff == 0) {
				t.Errorf("IsPageAligned = %v", got)
			}
			ar, ok := tc.v.ToRange(tc.length)
			if ok != tc.ok || (ok && ar != (AddrRange{tc.v, tc.end})) {
				t.Errorf("ToRange = %v, %v", ar, ok)
			}
		})
	}
}

func TestMustPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"MustRoundUp": func() { (^Addr(0)).MustRoundUp() },
		"MustToRange": func() { Addr(2).MustToRange(math.MaxUint64) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			f()
		})
	}
	if got := Addr(1).MustRoundUp(); got != PageSize {
		t.Errorf("MustRoundUp(1) = %#x", got)
	}
	if got := Addr(1).MustToRange(2); got != (AddrRange{1, 3}) {
		t.Errorf("MustToRange = %v", got)
	}
}

func TestPageRoundUp(t *testing.T) {
	for _, tc := range []struct {
		in, out uint64
		ok      bool
	}{
		{0, 0, true}, {1, 4096, true}, {4096, 4096, true}, {4097, 8192, true},
		{math.MaxUint64, 0, false}, {math.MaxUint64 - 4095, math.MaxUint64 - 4095, true},
	} {
		got, ok := PageRoundUp(tc.in)
		if ok != tc.ok || (ok && got != tc.out) {
			t.Errorf("PageRoundUp(%#x) = %#x, %v; want %#x, %v", tc.in, got, ok, tc.out, tc.ok)
		}
	}
}

func TestAddrRange(t *testing.T) {
	r := AddrRange{0x1000, 0x3000}
	for _, tc := range []struct {
		name string
		got  any
		want any
	}{
		{"Length", r.Length(), Addr(0x2000)},
		{"WellFormed", r.WellFormed(), true},
		{"not WellFormed", AddrRange{2, 1}.WellFormed(), false},
		{"Contains start", r.Contains(0x1000), true},
		{"Contains end", r.Contains(0x3000), false},
		{"Contains before", r.Contains(0xfff), false},
		{"Overlaps inner", r.Overlaps(AddrRange{0x2000, 0x2001}), true},
		{"Overlaps touching", r.Overlaps(AddrRange{0x3000, 0x4000}), false},
		{"Overlaps empty inside", r.Overlaps(AddrRange{0x2000, 0x2000}), true},
		{"Overlaps empty at edge", r.Overlaps(AddrRange{0x1000, 0x1000}), false},
		{"Superset", r.IsSupersetOf(AddrRange{0x1000, 0x3000}), true},
		{"not Superset", r.IsSupersetOf(AddrRange{0x1000, 0x3001}), false},
		{"Intersect", r.Intersect(AddrRange{0x2000, 0x5000}), AddrRange{0x2000, 0x3000}},
		{"Intersect disjoint length", r.Intersect(AddrRange{0x5000, 0x6000}).Length(), Addr(0)},
		{"CanSplitAt middle", r.CanSplitAt(0x2000), true},
		{"CanSplitAt start", r.CanSplitAt(0x1000), false},
		{"CanSplitAt end", r.CanSplitAt(0x3000), false},
		{"IsPageAligned", r.IsPageAligned(), true},
		{"not IsPageAligned", AddrRange{0x1000, 0x1001}.IsPageAligned(), false},
		{"String", r.String(), "[0x1000, 0x3000)"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestAccessType(t *testing.T) {
	for _, tc := range []struct {
		at        AccessType
		str       string
		prot      int
		any       bool
		effective AccessType
	}{
		{NoAccess, "---", 0, false, NoAccess},
		{Read, "r--", 1, true, Read},
		{Write, "-w-", 2, true, ReadWrite},
		{Execute, "--x", 4, true, AccessType{Read: true, Execute: true}},
		{ReadWrite, "rw-", 3, true, ReadWrite},
		{AnyAccess, "rwx", 7, true, AnyAccess},
	} {
		if got := tc.at.String(); got != tc.str {
			t.Errorf("%v.String() = %q", tc.at, got)
		}
		if got := tc.at.Prot(); got != tc.prot {
			t.Errorf("%v.Prot() = %d, want %d", tc.at, got, tc.prot)
		}
		if got := tc.at.Any(); got != tc.any {
			t.Errorf("%v.Any() = %v", tc.at, got)
		}
		if got := tc.at.Effective(); got != tc.effective {
			t.Errorf("%v.Effective() = %v, want %v", tc.at, got, tc.effective)
		}
	}
	if !AnyAccess.SupersetOf(ReadWrite) || ReadWrite.SupersetOf(Execute) || !Read.SupersetOf(NoAccess) {
		t.Error("SupersetOf wrong")
	}
	if got := ReadWrite.Intersect(AccessType{Write: true, Execute: true}); got != Write {
		t.Errorf("Intersect = %v", got)
	}
	if got := Read.Union(Execute); got != (AccessType{Read: true, Execute: true}) {
		t.Errorf("Union = %v", got)
	}
}
