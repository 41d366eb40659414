package tcf

import (
	"encoding/base64"
	"errors"
	"testing"
)

// tc is what the test encoder writes: a TCF v2 core segment.
type tc struct {
	version            int
	created, updated   int64
	cmp, cmpVersion    int
	purposes           []int // consented purposes
	vendors            []int // consented vendors
	maxVendor          int   // 0: the highest of vendors
	ranges             bool  // range encoding instead of a bit field
	cutBits            int   // drop this many bits from the end
	vendorRangeSwapped bool  // write a range whose end is before its start
}

// encode builds a core segment bit by bit as the TCF v2 specification lays
// it out, independently of the decoder.
func (c tc) encode() string {
	var w bitWriter
	w.put(uint64(c.version), 6)
	w.put(uint64(c.created), 36)
	w.put(uint64(c.updated), 36)
	w.put(uint64(c.cmp), 12)
	w.put(uint64(c.cmpVersion), 12)
	w.put(1, 6)                       // consent screen
	w.put(('E'-'A')<<6|('N'-'A'), 12) // language EN
	w.put(150, 12)                    // vendor list version
	w.put(4, 6)                       // policy version (TCF 2.2)
	w.put(1, 1)                       // service specific
	w.put(0, 1)                       // non-standard stacks
	w.put(0, 12)                      // special features
	var p uint64
	for _, n := range c.purposes {
		p |= 1 << (24 - n)
	}
	w.put(p, 24)
	w.put(0, 24) // purposes LI
	w.put(0, 1)  // purpose one treatment
	w.put(('D'-'A')<<6|('E'-'A'), 12)
	maxV := c.maxVendor
	for _, v := range c.vendors {
		maxV = max(maxV, v)
	}
	w.put(uint64(maxV), 16)
	if c.ranges {
		w.put(1, 1)
		w.put(uint64(len(c.vendors)), 12)
		for _, v := range c.vendors {
			if c.vendorRangeSwapped {
				w.put(1, 1)
				w.put(uint64(v), 16)
				w.put(uint64(v-1), 16)
				continue
			}
			w.put(0, 1)
			w.put(uint64(v), 16)
		}
	} else {
		w.put(0, 1)
		for id := 1; id <= maxV; id++ {
			bit := uint64(0)
			for _, v := range c.vendors {
				if v == id {
					bit = 1
				}
			}
			w.put(bit, 1)
		}
	}
	// Vendor legitimate interest section: empty bit field.
	w.put(0, 16)
	w.put(0, 1)
	w.bits = w.bits[:len(w.bits)-c.cutBits]
	return w.base64()
}

type bitWriter struct{ bits []byte }

func (w *bitWriter) put(v uint64, n int) {
	for i := n - 1; i >= 0; i-- {
		w.bits = append(w.bits, byte(v>>i&1))
	}
}

func (w *bitWriter) base64() string {
	for len(w.bits)%8 != 0 {
		w.bits = append(w.bits, 0)
	}
	b := make([]byte, len(w.bits)/8)
	for i, bit := range w.bits {
		b[i/8] |= bit << (7 - i%8)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestParse(t *testing.T) {
	t.Parallel()
	ok := tc{version: 2, created: 17_648_000_000, updated: 17_648_000_100, cmp: 7, cmpVersion: 3, purposes: []int{1, 2, 7}, vendors: []int{4, 755}}
	for _, tt := range []struct {
		name    string
		in      string
		vendor  int
		want    bool // Allows(in, vendor)
		wantErr error
	}{
		{"purpose 1 and the vendor, bit field", ok.encode(), 755, true, nil},
		{"purpose 1 and the vendor, ranges", func() string { c := ok; c.ranges = true; return c.encode() }(), 755, true, nil},
		{"no vendor configured", ok.encode(), 0, true, nil},
		{"another vendor", ok.encode(), 756, false, nil},
		{"vendor past max", ok.encode(), 9999, false, nil},
		{"without purpose 1", func() string { c := ok; c.purposes = []int{2, 3}; return c.encode() }(), 755, false, nil},
		{"with later segments", ok.encode() + ".YAAAAAAAAAAA", 755, true, nil},
		{"padded", ok.encode() + "==", 755, true, nil},
		{"version 1", func() string { c := ok; c.version = 1; return c.encode() }(), 755, false, errors.New("version")},
		{"cut in the header", ok.encode()[:20], 755, false, ErrShort},
		{"cut in the vendor bit field", func() string { c := ok; c.cutBits = 17 + 300; return c.encode() }(), 755, false, ErrShort},
		{"cut in the ranges", func() string { c := ok; c.ranges = true; c.cutBits = 17 + 20; return c.encode() }(), 755, false, ErrShort},
		{"range ending before its start", func() string { c := ok; c.ranges = true; c.vendorRangeSwapped = true; return c.encode() }(), 755, false, errors.New("range")},
		{"not base64url", "CPXx+RfAPXxRfAAfKABENB/CgAAAAAAAAAAYgAAAAAAAA", 755, false, ErrBase64},
		{"empty", "", 755, false, ErrEmpty},
		{"the old test string", "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA", 0, false, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte(tt.in))
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("Parse(%q): %v", tt.in, err)
			case tt.wantErr != nil && err == nil:
				t.Fatalf("Parse(%q) succeeded, want %v", tt.in, tt.wantErr)
			case tt.wantErr != nil && errors.Is(tt.wantErr, ErrShort) && !errors.Is(err, ErrShort),
				tt.wantErr != nil && errors.Is(tt.wantErr, ErrBase64) && !errors.Is(err, ErrBase64):
				t.Fatalf("Parse(%q): %v, want %v", tt.in, err, tt.wantErr)
			}
			if got := Allows([]byte(tt.in), tt.vendor); got != tt.want {
				t.Fatalf("Allows(%q, %d) = %v, want %v (parsed %+v)", tt.in, tt.vendor, got, tt.want, c)
			}
		})
	}
	c, err := Parse([]byte(ok.encode()))
	if err != nil {
		t.Fatal(err)
	}
	if c.Created != ok.created || c.LastUpdated != ok.updated || c.CmpID != 7 || c.CmpVersion != 3 ||
		string(c.ConsentLanguage[:]) != "EN" || string(c.PublisherCC[:]) != "DE" || c.VendorListVersion != 150 ||
		c.PolicyVersion != 4 || !c.IsServiceSpecific || c.MaxVendorID != 755 ||
		!c.Purpose(1) || !c.Purpose(2) || c.Purpose(3) || !c.Purpose(7) || !c.Vendor(4) || c.Vendor(5) {
		t.Fatalf("fields decoded wrong: %+v", c)
	}
}

func TestAllowsAllocations(t *testing.T) {
	s := []byte(tc{version: 2, created: 1, purposes: []int{1}, vendors: []int{3, 40, 1000}, ranges: true}.encode())
	if n := testing.AllocsPerRun(100, func() { Allows(s, 1000) }); n != 0 {
		t.Fatalf("Allows allocates %.1f times", n)
	}
}

func FuzzParse(f *testing.F) {
	for _, c := range []tc{
		{version: 2, created: 1, purposes: []int{1}, vendors: []int{1, 2, 300}},
		{version: 2, created: 1, purposes: []int{1, 24}, vendors: []int{5, 6}, ranges: true},
		{version: 2, purposes: []int{1}, vendors: []int{9}, ranges: true, cutBits: 20},
	} {
		f.Add(c.encode())
	}
	f.Add("CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA")
	f.Add("")
	f.Add("....")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse([]byte(s))
		if err != nil {
			if Allows([]byte(s), 1) {
				t.Fatalf("Allows(%q) with a parse error %v", s, err)
			}
			return
		}
		for id := range min(c.MaxVendorID+2, 2000) {
			c.Vendor(id)
		}
		for n := range 26 {
			c.Purpose(n)
		}
	})
}
