package counts

import (
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
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

// Merged records add up their named sums, as totals; records without sums
// give a Result without them.
func TestAccumulateSums(t *testing.T) {
	t.Parallel()
	recs := make([]hllstore.Count, 3)
	for i := range recs {
		recs[i] = hllstore.NewCount()
		recs[i].Total = uint64(i + 1)
		recs[i].Version = 1
		recs[i].Sketch.InsertHash(uint64(i+1) * 0x9e3779b97f4a7c15)
	}
	recs[0].Sums = map[string]uint64{hllstore.SumPages: 3, hllstore.SumBounces: 1}
	recs[2].Sums = map[string]uint64{hllstore.SumPages: 4, hllstore.SumDurationMs: 1 << 40}
	a := newAccumulator()
	if err := a.addAll(recs, []int{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	res := a.result()
	want := map[string]uint64{hllstore.SumPages: 7, hllstore.SumBounces: 1, hllstore.SumDurationMs: 1 << 40}
	if res.Total != 6 || res.Uniques != 3 || !maps.Equal(res.Sums, want) {
		t.Fatalf("total %d uniques %d sums %v, want 6, 3, %v", res.Total, res.Uniques, res.Sums, want)
	}
	if recs[0].Sums[hllstore.SumPages] != 3 {
		t.Fatal("merging changed a record's sums")
	}
	b := newAccumulator()
	if err := b.addAll(recs, []int{1}); err != nil || b.result().Sums != nil {
		t.Fatalf("sums of a record without any: %v %v", b.result().Sums, err)
	}
}

// Visits are the last of Kinds: a Summary and a Series count them after
// every event kind, whose order is unchanged.
func TestKindsEndWithVisits(t *testing.T) {
	t.Parallel()
	want := []pixelpb.Kind{
		pixelpb.Kind_KIND_IMPRESSION, pixelpb.Kind_KIND_VIEW, pixelpb.Kind_KIND_CLICK,
		pixelpb.Kind_KIND_CONVERSION, pixelpb.Kind_KIND_OPEN, pixelpb.Kind_KIND_CUSTOM, pixelpb.Kind_KIND_SESSION,
	}
	if !slices.Equal(Kinds, want) {
		t.Fatalf("Kinds %v, want %v", Kinds, want)
	}
}
