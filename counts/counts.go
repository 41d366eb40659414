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
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/axiomhq/hyperloglog"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
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

// Query selects what to count.
type Query struct {
	// ContentID, or Campaign, or both (a campaign on one content id). At
	// least one is required.
	ContentID string
	Campaign  string
	Kind      pixelpb.Kind
	Class     hllstore.Class
	// From and To bound the range [From, To); both are truncated to the hour.
	From, To time.Time
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

// Stats counts q.
func (r *Reader) Stats(ctx context.Context, q Query) (Result, error) {
	from, to := q.From.UTC().Truncate(time.Hour), q.To.UTC().Truncate(time.Hour)
	switch {
	case q.ContentID == "" && q.Campaign == "":
		return Result{}, fmt.Errorf("%w: a content id or a campaign is required", ErrBadQuery)
	case !to.After(from):
		return Result{}, fmt.Errorf("%w: empty range: to must be after from (to is exclusive, hour resolution)", ErrBadQuery)
	case to.Sub(from) > r.MaxRange:
		return Result{}, fmt.Errorf("%w: range of %.1f days is longer than the limit of %.0f days", ErrBadQuery, to.Sub(from).Hours()/24, r.MaxRange.Hours()/24)
	}
	hours, days := Cover(from.UnixMilli(), to.UnixMilli())
	var keys []hllstore.Key
	add := func(contents []string, g pixelpb.Granularity, start int64) {
		for _, c := range contents {
			keys = append(keys, hllstore.Key{ContentID: c, Campaign: q.Campaign, Kind: q.Kind, Class: q.Class, Gran: g, Start: start})
		}
	}
	for _, start := range days {
		contents, err := r.contents(ctx, q, start)
		if err != nil {
			return Result{}, err
		}
		add(contents, pixelpb.Granularity_GRANULARITY_DAY, start)
	}
	for _, start := range hours {
		contents, err := r.contents(ctx, q, hllstore.DayStart(start))
		if err != nil {
			return Result{}, err
		}
		add(contents, pixelpb.Granularity_GRANULARITY_HOUR, start)
	}
	recs, err := r.store.Load(ctx, keys)
	if err != nil {
		return Result{}, err
	}
	merged := hllstore.NewSketch()
	var res Result
	for i := range recs {
		rec := &recs[i]
		res.Total += rec.Total
		if err := merged.Merge(rec.Sketch); err != nil {
			return Result{}, fmt.Errorf("merge sketches: %w", err)
		}
		for reason, n := range rec.Reasons {
			if res.Reasons == nil {
				res.Reasons = map[string]uint64{}
			}
			res.Reasons[reason] += n
		}
		res.Orders += rec.NOrders
		for cur, v := range rec.Value {
			if res.Value == nil {
				res.Value = map[string]int64{}
			}
			res.Value[cur] += v
		}
	}
	res.Uniques = merged.Estimate()
	res.UniquesBound = Bound(merged)
	return res, nil
}

// contents lists the content ids whose records hold q's counts on a day.
func (r *Reader) contents(ctx context.Context, q Query, dayStart int64) ([]string, error) {
	if q.ContentID != "" {
		return []string{q.ContentID}, nil
	}
	return r.store.CampaignContents(ctx, q.Campaign, dayStart)
}

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
