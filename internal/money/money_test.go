package money

import (
	"encoding/json"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// extremes are the values most likely to break a sum.
var extremes = []int64{0, 1, -1, math.MaxInt64, math.MinInt64, math.MaxInt64 - 1, math.MinInt64 + 1,
	999_999_999_999_999_999, -999_999_999_999_999_999, 1 << 62, -(1 << 62)}

func checkSum(t *testing.T, vals []int64) {
	t.Helper()
	var s Sum
	want := new(big.Int)
	for _, v := range vals {
		s.Add(v)
		want.Add(want, big.NewInt(v))
	}
	if got := s.Micros(); got != want.String() {
		t.Fatalf("sum of %v: got %s, want %s", vals, got, want)
	}
	back, err := ParseMicros(s.Micros())
	if err != nil || back != s {
		t.Fatalf("ParseMicros(%s) = %v, %v; want %v", s.Micros(), back, err, s)
	}
	u, err := ParseUnits(s.Units())
	if err != nil || u != s {
		t.Fatalf("ParseUnits(%s) = %v, %v; want %v", s.Units(), u, err, s)
	}
}

// TestSumIsExact: sums of extreme and random int64 values, far past where an
// int64 sum overflows, equal big.Int's, and survive both text forms.
func TestSumIsExact(t *testing.T) {
	for _, a := range extremes {
		for _, b := range extremes {
			checkSum(t, []int64{a, b})
			checkSum(t, []int64{a, b, a, b, a})
		}
	}
	// Ten 999999999999.999999 values: an int64 sum of micros wraps
	// negative at the tenth.
	ten := make([]int64, 10)
	for i := range ten {
		ten[i] = 999_999_999_999_999_999
	}
	checkSum(t, ten)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		vals := make([]int64, 1+rng.IntN(50))
		for i := range vals {
			switch rng.IntN(3) {
			case 0:
				vals[i] = extremes[rng.IntN(len(extremes))]
			case 1:
				vals[i] = int64(rng.Uint64())
			default:
				vals[i] = rng.Int64N(10_000_000_000) - 5_000_000_000
			}
		}
		checkSum(t, vals)
	}
	// Many maximal values: the sum keeps growing past 2^64.
	var s Sum
	for range 1 << 12 {
		s.Add(math.MaxInt64)
	}
	want := new(big.Int).Mul(big.NewInt(math.MaxInt64), big.NewInt(1<<12))
	if s.Micros() != want.String() {
		t.Fatalf("4096 × MaxInt64: got %s, want %s", s.Micros(), want)
	}
}

func TestUnits(t *testing.T) {
	for _, c := range []struct {
		micros int64
		units  string
	}{{0, "0"}, {1, "0.000001"}, {-1, "-0.000001"}, {12_500_000, "12.5"}, {-3_000_000, "-3"}, {1_234_567, "1.234567"}, {100_000_000, "100"}} {
		if got := Of(c.micros).Units(); got != c.units {
			t.Errorf("Units(%d) = %q, want %q", c.micros, got, c.units)
		}
		b, err := json.Marshal(map[string]Sum{"EUR": Of(c.micros)})
		if err != nil || string(b) != `{"EUR":`+c.units+`}` {
			t.Errorf("JSON of %d: %s, %v", c.micros, b, err)
		}
		var back map[string]Sum
		if err := json.Unmarshal(b, &back); err != nil || back["EUR"] != Of(c.micros) {
			t.Errorf("JSON round trip of %d: %v, %v", c.micros, back, err)
		}
	}
	for _, bad := range []string{"", "-", ".5", "1.", "1.2345678", "1e6", "+1", "0x10", "NaN", "1,5", " 1"} {
		if _, err := ParseUnits(bad); err == nil {
			t.Errorf("ParseUnits(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"", "-", "+1", "1.5", "NaN", "170141183460469231731687303715884105728"} {
		if _, err := ParseMicros(bad); err == nil {
			t.Errorf("ParseMicros(%q) accepted", bad)
		}
	}
	for _, c := range []struct {
		micros int64
		want   string
	}{{12_500_000, "12.50"}, {1_234_567, "1.234567"}, {0, "0.00"}, {-1_000_000, "-1.00"}, {10_000, "0.01"}} {
		if got := Of(c.micros).Format(2); got != c.want {
			t.Errorf("Format(2) of %d = %q, want %q", c.micros, got, c.want)
		}
	}
}

// FuzzSum: any two values and their sum round-trip exactly.
func FuzzSum(f *testing.F) {
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64), uint8(3))
	f.Add(int64(math.MinInt64), int64(-1), uint8(2))
	f.Fuzz(func(t *testing.T, a, b int64, n uint8) {
		vals := []int64{a}
		for range n % 64 {
			vals = append(vals, b)
		}
		checkSum(t, vals)
	})
}
