package counts

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/hllstore"
)

func TestCover(t *testing.T) {
	t.Parallel()
	at := func(d, h int) int64 { return time.Date(2026, 11, d, h, 0, 0, 0, time.UTC).UnixMilli() }
	f := func(from, to int64, wantHours, wantDays []int64) {
		t.Helper()
		hours, days := Cover(from, to)
		if !equal(hours, wantHours) || !equal(days, wantDays) {
			t.Errorf("Cover(%d, %d) = hours %v days %v, want %v %v", from, to, hours, days, wantHours, wantDays)
		}
	}
	f(at(1, 0), at(2, 0), nil, []int64{at(1, 0)})
	f(at(1, 22), at(3, 2), []int64{at(1, 22), at(1, 23), at(3, 0), at(3, 1)}, []int64{at(2, 0)})
	f(at(1, 5), at(1, 7), []int64{at(1, 5), at(1, 6)}, nil)
	f(at(1, 0), at(1, 0), nil, nil)
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestAccuracy checks the sketches against true cardinalities: every estimate
// lies inside its own stated bound, the mean absolute error is at most 1%,
// and small cardinalities are exact.
func TestAccuracy(t *testing.T) {
	t.Parallel()
	sizes := []int{10, 100, 1_000, 10_000, 100_000, 1_000_000}
	if testing.Short() {
		sizes = sizes[:5]
	}
	const seeds = 5
	for _, n := range sizes {
		var sumErr float64
		for seed := range uint64(seeds) {
			rng := rand.New(rand.NewPCG(seed, uint64(n)))
			sk := hllstore.NewSketch()
			for range n {
				sk.InsertHash(rng.Uint64())
			}
			est, bound := sk.Estimate(), Bound(sk)
			diff := math.Abs(float64(est) - float64(n))
			if diff > float64(bound) {
				t.Errorf("n=%d seed=%d: estimate %d is %.0f off, outside its bound ±%d", n, seed, est, diff, bound)
			}
			if n <= 1_000 && est != uint64(n) {
				t.Errorf("n=%d seed=%d: estimate %d, want exact", n, seed, est)
			}
			sumErr += diff / float64(n)
		}
		mae := sumErr / seeds
		t.Logf("n=%-8d mean absolute error %.4f%%", n, 100*mae)
		if mae > 0.01 {
			t.Errorf("n=%d: mean absolute error %.3f%% > 1%%", n, 100*mae)
		}
	}
}

func TestRatio(t *testing.T) {
	t.Parallel()
	if Ratio(1, 0) != 0 || Ratio(1, 4) != 0.25 {
		t.Fatal("Ratio")
	}
}
