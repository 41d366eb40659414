// Package counts answers questions about counted events: totals and unique
// visitors of a content id or a campaign over any [from, to) range at hour
// resolution, with the error bound of the unique estimate, plus CTR and
// conversion rate. It reads through hllstore and is what the query API, and
// any other Go service, uses to read counts.
//
// One query model, Summary over a Scope (narrowed by Kinds and Classes when
// fewer are wanted), answers every count; Series, Breakdown and Top build on
// the same records. A range is covered by whole weeks of final days (week
// rollups, see Reader.Final), whole UTC days and hours at its ragged ends; their sketches are
// merged (unique visitors over the range, not a sum of daily uniques) and
// their totals added.
package counts

import (
	"errors"
	"math"
	"sync"
	"time"

	"github.com/axiomhq/hyperloglog"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/money"
)

// Reader reads counts.
type Reader struct {
	store *hllstore.Store
	// MaxRange bounds a query's range. Default 400 days.
	MaxRange time.Duration
	// Final is how long after its end a week is read from week rollups
	// (hllstore.GranularityWeek) instead of its days: the aggregator's late
	// horizon (-aggregator.lateHorizon, 7 days) plus a margin, by which the
	// aggregator's rollup job has built them. Correctness does not depend
	// on it: a rollup names the versions of the days it was built from, and
	// one that is missing or stale (a day written since) is built again from
	// the days by the read (hllstore.Store.Load). Whole weeks of a content
	// id, and of a campaign's content ids, are read from rollups. 0 turns
	// rollups off. Default 8 days.
	Final time.Duration
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
}

// NewReader returns a Reader on store.
func NewReader(store *hllstore.Store) *Reader {
	return &Reader{store: store, MaxRange: 400 * 24 * time.Hour, Final: 8 * 24 * time.Hour, Now: time.Now}
}

// Result is a count.
type Result struct {
	// Total is the exact number of distinct events.
	Total uint64
	// Uniques is the estimated number of distinct visitors over the range.
	Uniques uint64
	// UniquesBound is the half-width of the estimate's error band: the true
	// count lies in [Uniques-UniquesBound, Uniques+UniquesBound] with
	// overwhelming probability (four standard errors). 0 means exact.
	UniquesBound uint64
	// Reasons counts bot and machine events per reason (those classes only).
	Reasons map[string]uint64
	// Orders is the number of distinct orders (conversions only), Value the
	// summed value per currency in millionths, each order counted once per
	// bucket.
	Orders uint64
	Value  map[string]money.Sum
	// Sums adds up the records' named sums (hllstore.Count.Sums): for
	// visits (kind KIND_SESSION) bounces, duration_ms and pages.
	Sums map[string]uint64
}

// ErrBadQuery wraps every problem with a Query.
var ErrBadQuery = errors.New("bad query")

// Cover splits [from, to) (hour-aligned, Unix ms) into whole UTC days and the
// hours at both ends that do not fill a day.
func Cover(from, to int64) (hours, days []int64) {
	for t := from; t < to; {
		if t%hllstore.DayMs == 0 && t+hllstore.DayMs <= to {
			days = append(days, t)
			t += hllstore.DayMs
			continue
		}
		hours = append(hours, t)
		t += hllstore.HourMs
	}
	return hours, days
}

// Sparse sketches use 2^25 buckets and linear counting; dense ones 2^14
// registers. See hllstore.Precision.
const (
	sparseBuckets = 1 << 25
	denseStdErr   = 1.04 / 128 // 1.04/sqrt(2^14)
	sigmas        = 4
)

// Bound returns four standard errors of sk's estimate, rounded up: for a
// sparse sketch the linear-counting error over 2^25 buckets (0 for small
// counts, where the estimate is exact), for a dense one 0.81% of the estimate.
func Bound(sk *hyperloglog.Sketch) uint64 {
	_, b := estimate(sk)
	return b
}

// estimate returns sk's estimate and its Bound, estimating once.
func estimate(sk *hyperloglog.Sketch) (uint64, uint64) {
	n := sk.Estimate()
	return n, bound(float64(n), isSparse(sk))
}

func bound(est float64, sparse bool) uint64 {
	if est == 0 {
		return 0
	}
	if sparse {
		// Var of linear counting: m(e^t - t - 1), t = n/m (Whang et al. 1990).
		t := est / sparseBuckets
		sd := math.Sqrt(sparseBuckets * (math.Expm1(t) - t))
		b := sigmas * sd
		if b < 0.5 {
			return 0
		}
		return uint64(math.Ceil(b))
	}
	return uint64(math.Ceil(sigmas * denseStdErr * est))
}

// isSparse reads the representation flag of the sketch's encoding (byte 3).
// A dense sketch's encoding is 16 KiB: encode into a pooled buffer.
func isSparse(sk *hyperloglog.Sketch) bool {
	bp := encodeBufs.Get().(*[]byte)
	b, err := sk.AppendBinary((*bp)[:0])
	sparse := err == nil && len(b) > 3 && b[3] == 1
	*bp = b
	encodeBufs.Put(bp)
	return sparse
}

var encodeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1<<14+64); return &b }}

// Ratio returns num/den, or 0 when den is 0.
func Ratio(num, den uint64) float64 {
	if den == 0 {
		return 0
	}
	return float64(num) / float64(den)
}
