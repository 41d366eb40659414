// Package tcf decodes the consent strings of the IAB Transparency and
// Consent Framework v2 (TCF 2.0-2.2), as pixels receive them in the
// gdpr_consent parameter: only the core segment (the part before the first
// '.'), which carries the purpose and vendor consents.
//
// The string is read in place, six bits per base64url character, so Parse
// does not allocate, and every read is bounds-checked: a string that is cut
// short, not base64url, not version 2, or whose vendor section points past
// its end is an error, never a panic. Consent holds the string it was
// parsed from; it is valid only while that string is.
package tcf

import (
	"errors"
	"fmt"
)

// Purposes of the TCF used by the edge.
const (
	// PurposeStore is purpose 1, "Store and/or access information on a
	// device": what setting or reading a cookie needs.
	PurposeStore = 1
)

// Errors of Parse.
var (
	ErrEmpty   = errors.New("tcf: empty consent string")
	ErrTooLong = errors.New("tcf: consent string too long")
	ErrShort   = errors.New("tcf: consent string ends inside a field")
	ErrBase64  = errors.New("tcf: consent string is not base64url")
)

// MaxLen bounds the characters of a core segment Parse reads (a bit field
// for every vendor of the global list fits well within it).
const MaxLen = 8192

// Bit offsets of the core segment's fields (TCF v2 "Core String").
const (
	offVersion     = 0
	offCreated     = 6
	offLastUpdated = 42
	offCmpID       = 78
	offCmpVersion  = 90
	offScreen      = 102
	offLanguage    = 108
	offVendorList  = 120
	offPolicy      = 132
	offService     = 138
	offNonStandard = 139
	offSpecial     = 140
	offPurposes    = 152
	offPurposesLI  = 176
	offPurposeOne  = 200
	offPublisherCC = 201
	offMaxVendor   = 213
	offVendorEnc   = 229
	offVendorData  = 230
)

// Consent is a parsed core segment.
type Consent struct {
	core []byte // base64url characters of the core segment, borrowed

	// Version is 2.
	Version int
	// Created and LastUpdated are in deciseconds since the Unix epoch.
	Created, LastUpdated int64
	CmpID, CmpVersion    int
	ConsentScreen        int
	// ConsentLanguage and PublisherCC are two upper-case letters.
	ConsentLanguage, PublisherCC [2]byte
	VendorListVersion            int
	PolicyVersion                int
	IsServiceSpecific            bool
	UseNonStandardStacks         bool
	PurposeOneTreatment          bool
	// SpecialFeatures, Purposes and PurposesLI have bit n-1 set when
	// special feature / purpose n is opted in / consented / has legitimate
	// interest established.
	SpecialFeatures uint16
	Purposes        uint32
	PurposesLI      uint32
	// MaxVendorID is the highest vendor id of the vendor consent section.
	MaxVendorID int

	rangeEncoded bool
	entries      int // range encoding: number of entries
}

// Parse reads the core segment of s.
func Parse(s []byte) (Consent, error) {
	for i, c := range s {
		if c == '.' {
			s = s[:i]
			break
		}
	}
	for len(s) > 0 && s[len(s)-1] == '=' { // tolerate padding
		s = s[:len(s)-1]
	}
	if len(s) == 0 {
		return Consent{}, ErrEmpty
	}
	if len(s) > MaxLen {
		return Consent{}, ErrTooLong
	}
	r := bits{s: s}
	c := Consent{core: s}
	c.Version = int(r.read(offVersion, 6))
	if r.err == nil && c.Version != 2 {
		return Consent{}, fmt.Errorf("tcf: version %d, want 2", c.Version)
	}
	c.Created = int64(r.read(offCreated, 36))
	c.LastUpdated = int64(r.read(offLastUpdated, 36))
	c.CmpID = int(r.read(offCmpID, 12))
	c.CmpVersion = int(r.read(offCmpVersion, 12))
	c.ConsentScreen = int(r.read(offScreen, 6))
	c.ConsentLanguage = r.letters(offLanguage)
	c.VendorListVersion = int(r.read(offVendorList, 12))
	c.PolicyVersion = int(r.read(offPolicy, 6))
	c.IsServiceSpecific = r.read(offService, 1) == 1
	c.UseNonStandardStacks = r.read(offNonStandard, 1) == 1
	c.SpecialFeatures = uint16(r.read(offSpecial, 12))
	c.Purposes = reverse(uint32(r.read(offPurposes, 24)), 24)
	c.PurposesLI = reverse(uint32(r.read(offPurposesLI, 24)), 24)
	c.PurposeOneTreatment = r.read(offPurposeOne, 1) == 1
	c.PublisherCC = r.letters(offPublisherCC)
	c.MaxVendorID = int(r.read(offMaxVendor, 16))
	c.rangeEncoded = r.read(offVendorEnc, 1) == 1
	if r.err != nil {
		return Consent{}, r.err
	}
	if c.rangeEncoded {
		// Walk the entries once so Vendor never meets a malformed one.
		c.entries = int(r.read(offVendorData, 12))
		pos := offVendorData + 12
		for range c.entries {
			var start, end int
			start, end, pos = r.entry(pos)
			if r.err != nil {
				return Consent{}, r.err
			}
			if start < 1 || end < start || end > c.MaxVendorID {
				return Consent{}, fmt.Errorf("tcf: vendor range %d-%d outside 1-%d", start, end, c.MaxVendorID)
			}
		}
	} else if c.MaxVendorID > 0 {
		r.read(offVendorData+c.MaxVendorID-1, 1) // the bit field must be all there
	}
	if r.err != nil {
		return Consent{}, r.err
	}
	return c, nil
}

// Purpose reports whether purpose n (1-24) has consent.
func (c *Consent) Purpose(n int) bool {
	return n >= 1 && n <= 24 && c.Purposes&(1<<(n-1)) != 0
}

// Vendor reports whether vendor id has consent.
func (c *Consent) Vendor(id int) bool {
	if id < 1 || id > c.MaxVendorID {
		return false
	}
	r := bits{s: c.core}
	if !c.rangeEncoded {
		return r.read(offVendorData+id-1, 1) == 1
	}
	pos := offVendorData + 12
	for range c.entries {
		var start, end int
		start, end, pos = r.entry(pos)
		if start <= id && id <= end {
			return true
		}
	}
	return false
}

// Allows reports whether s is a valid TCF v2 consent string with consent
// for purpose 1 (storing and reading a cookie) and, when vendorID is above
// 0, for that vendor.
func Allows(s []byte, vendorID int) bool {
	c, err := Parse(s)
	if err != nil || !c.Purpose(PurposeStore) {
		return false
	}
	return vendorID <= 0 || c.Vendor(vendorID)
}

// bits reads big-endian bit fields from base64url characters.
type bits struct {
	s   []byte
	err error
}

func (r *bits) read(pos, n int) uint64 {
	if r.err != nil {
		return 0
	}
	if pos < 0 || pos+n > 6*len(r.s) {
		r.err = ErrShort
		return 0
	}
	var v uint64
	for i := pos; i < pos+n; i++ {
		d := b64(r.s[i/6])
		if d < 0 {
			r.err = ErrBase64
			return 0
		}
		v = v<<1 | uint64(d>>(5-i%6)&1)
	}
	return v
}

// entry reads the vendor range entry at pos (an IsRange bit, a start
// vendor id and, for a range, an end id) and returns its bounds and the
// position after it.
func (r *bits) entry(pos int) (start, end, next int) {
	isRange := r.read(pos, 1) == 1
	start = int(r.read(pos+1, 16))
	next, end = pos+17, start
	if isRange {
		end = int(r.read(next, 16))
		next += 16
	}
	return start, end, next
}

func (r *bits) letters(pos int) [2]byte {
	return [2]byte{'A' + byte(r.read(pos, 6)), 'A' + byte(r.read(pos+6, 6))}
}

func b64(c byte) int {
	switch {
	case 'A' <= c && c <= 'Z':
		return int(c - 'A')
	case 'a' <= c && c <= 'z':
		return int(c-'a') + 26
	case '0' <= c && c <= '9':
		return int(c-'0') + 52
	case c == '-':
		return 62
	case c == '_':
		return 63
	}
	return -1
}

// reverse turns a field whose first bit is item 1 into a mask whose bit 0
// is item 1.
func reverse(v uint32, n int) uint32 {
	var out uint32
	for i := range n {
		if v&(1<<(n-1-i)) != 0 {
			out |= 1 << i
		}
	}
	return out
}
