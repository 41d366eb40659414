// Package counts answers questions about counted events: totals and unique
// visitors of a content id or a campaign over any [from, to) range at hour
// resolution, with the error bound of the unique estimate, plus CTR and
// conversion rate. It reads through hllstore and is what the query API, and
// any other Go service, uses to read counts.
//
// A range is covered by whole UTC days where it can and by hours at its
// ragged ends; their sketches are merged (unique visitors over the range,
// not a sum of daily uniques) and their totals added.
package counts

import (
	"errors"
	"math"
	"time"

	"github.com/axiomhq/hyperloglog"

	"github.com/pixelpipe/pixelpipe/hllstore"
)

// Reader reads counts.
type Reader struct {
	store *hllstore.Store
	// MaxRange bounds a query's range. Default 400 days.
	MaxRange time.Duration
}

// NewReader returns a Reader on store.
func NewReader(store *hllstore.Store) *Reader {
	return &Reader{store: store, MaxRange: 400 * 24 * time.Hour}
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
	Value  map[string]int64
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
	est := float64(sk.Estimate())
	if est == 0 {
		return 0
	}
	if isSparse(sk) {
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
func isSparse(sk *hyperloglog.Sketch) bool {
	var buf [8]byte
	b, err := sk.AppendBinary(buf[:0])
	return err == nil && len(b) > 3 && b[3] == 1
}

// Ratio returns num/den, or 0 when den is 0.
func Ratio(num, den uint64) float64 {
	if den == 0 {
		return 0
	}
	return float64(num) / float64(den)
}
