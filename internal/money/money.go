// Package money sums conversion values exactly.
//
// A conversion's value is an int64 count of millionths of its currency's
// unit (micros). A Sum of such values is a 128-bit integer of micros, so no
// sum of int64 values can overflow before 2^63 of them were added: far more
// conversions than a content id can have. Sums are stored and printed as
// decimal integers of micros (Micros, ParseMicros) and shown as exact
// decimals of the currency unit (Units, and JSON numbers).
package money

import (
	"errors"
	"math/big"
	"math/bits"
	"strconv"
	"strings"
)

// Sum is an exact sum of micros: hi*2^64 + lo, two's complement. The zero
// value is 0.
type Sum struct {
	hi int64
	lo uint64
}

// Of returns the sum holding micros.
func Of(micros int64) Sum { return Sum{hi: micros >> 63, lo: uint64(micros)} }

// Add adds micros to s.
func (s *Sum) Add(micros int64) { s.AddSum(Of(micros)) }

// AddSum adds o to s.
func (s *Sum) AddSum(o Sum) {
	var carry uint64
	s.lo, carry = bits.Add64(s.lo, o.lo, 0)
	s.hi += o.hi + int64(carry)
}

// big returns s as a big.Int.
func (s Sum) big() *big.Int {
	b := big.NewInt(s.hi)
	b.Lsh(b, 64)
	return b.Add(b, new(big.Int).SetUint64(s.lo))
}

var (
	mask64 = new(big.Int).SetUint64(^uint64(0))
	max128 = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 127), big.NewInt(1))
	min128 = new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), 127))
)

// ErrRange means a number does not fit in a Sum.
var ErrRange = errors.New("money: sum out of range")

// fromBig returns b as a Sum.
func fromBig(b *big.Int) (Sum, error) {
	if b.Cmp(max128) > 0 || b.Cmp(min128) < 0 {
		return Sum{}, ErrRange
	}
	lo := new(big.Int).And(b, mask64) // two's complement low bits
	hi := new(big.Int).Rsh(b, 64)     // arithmetic shift
	return Sum{hi: hi.Int64(), lo: lo.Uint64()}, nil
}

// Micros returns s as a decimal integer of micros ("-1500000").
func (s Sum) Micros() string {
	if s.hi == 0 && s.lo < 1<<63 || s.hi == -1 && s.lo >= 1<<63 {
		return strconv.FormatInt(int64(s.lo), 10)
	}
	return s.big().String()
}

// ParseMicros parses a decimal integer of micros, the form Micros writes.
func ParseMicros(s string) (Sum, error) {
	b, ok := new(big.Int).SetString(s, 10)
	if !ok || s == "" || s[0] == '+' {
		return Sum{}, errors.New("money: not a decimal integer: " + quote(s))
	}
	return fromBig(b)
}

// Units returns s in currency units as an exact decimal, without trailing
// zeros after the point: "12.5", "-0.000001", "3".
func (s Sum) Units() string {
	m := s.Micros()
	neg := strings.HasPrefix(m, "-")
	if neg {
		m = m[1:]
	}
	if len(m) < 7 {
		m = strings.Repeat("0", 7-len(m)) + m
	}
	whole, frac := m[:len(m)-6], strings.TrimRight(m[len(m)-6:], "0")
	out := whole
	if frac != "" {
		out += "." + frac
	}
	if neg {
		out = "-" + out
	}
	return out
}

// Format returns Units with at least minDecimals digits after the point
// (at most 6): Format(2) of 12.5 is "12.50", of 1.234567 "1.234567".
func (s Sum) Format(minDecimals int) string {
	u := s.Units()
	minDecimals = min(minDecimals, 6)
	if minDecimals <= 0 {
		return u
	}
	_, frac, ok := strings.Cut(u, ".")
	if !ok {
		u += "."
	}
	return u + strings.Repeat("0", max(minDecimals-len(frac), 0))
}

// ParseUnits parses a decimal of currency units with at most six digits
// after the point ("12.5", "-3"), the form Units writes.
func ParseUnits(s string) (Sum, error) {
	t := s
	neg := strings.HasPrefix(t, "-")
	if neg {
		t = t[1:]
	}
	whole, frac, _ := strings.Cut(t, ".")
	if whole == "" || len(frac) > 6 || strings.Contains(s, ".") && frac == "" || !digits(whole) || !digits(frac) {
		return Sum{}, errors.New("money: not a decimal with at most 6 digits after the point: " + quote(s))
	}
	m := whole + frac + strings.Repeat("0", 6-len(frac))
	if neg {
		m = "-" + m
	}
	return ParseMicros(m)
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// quote quotes s for an error, cut at 48 bytes.
func quote(s string) string {
	if len(s) > 48 {
		s = s[:48] + "…"
	}
	return strconv.Quote(s)
}

// MarshalJSON writes s in currency units as an exact JSON number.
func (s Sum) MarshalJSON() ([]byte, error) { return []byte(s.Units()), nil }

// UnmarshalJSON reads a JSON number of currency units (at most six digits
// after the point; no exponent).
func (s *Sum) UnmarshalJSON(b []byte) error {
	v, err := ParseUnits(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
