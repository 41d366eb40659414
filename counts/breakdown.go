package counts

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// BreakdownValue is the human count of one value of a breakdown dimension.
type BreakdownValue struct {
	Value        string
	Total        uint64
	Uniques      uint64
	UniquesBound uint64
}

// Breakdown returns the human counts of contentID and kind split by dim
// (hllstore.DimCountry, ...) over the UTC days that start in [from, to),
// largest total first. Values past the aggregator's bound are under "other".
func (r *Reader) Breakdown(ctx context.Context, contentID string, kind pixelpb.Kind, dim string, from, to time.Time) ([]BreakdownValue, error) {
	if !slices.Contains(hllstore.Dims(), dim) {
		return nil, fmt.Errorf("%w: unknown dimension %q: use one of %v", ErrBadQuery, dim, hllstore.Dims())
	}
	fromDay := hllstore.DayStart(from.UnixMilli())
	toDay := to.UnixMilli()
	if toDay <= fromDay {
		return nil, fmt.Errorf("%w: empty range: to must be after from", ErrBadQuery)
	}
	if time.Duration(toDay-fromDay)*time.Millisecond > r.MaxRange {
		return nil, fmt.Errorf("%w: range longer than the limit of %.0f days", ErrBadQuery, r.MaxRange.Hours()/24)
	}
	var keys []hllstore.BreakdownKey
	for d := fromDay; d < toDay; d += hllstore.DayMs {
		keys = append(keys, hllstore.BreakdownKey{ContentID: contentID, Kind: kind, DayStart: d})
	}
	bs, err := r.store.LoadBreakdowns(ctx, keys)
	if err != nil {
		return nil, err
	}
	merged := map[string]*hllstore.SubCount{}
	for _, b := range bs {
		for v, sc := range b.Dims[dim] {
			m := merged[v]
			if m == nil {
				m = &hllstore.SubCount{Sketch: hllstore.NewSketch()}
				merged[v] = m
			}
			m.Total += sc.Total
			if err := m.Sketch.Merge(sc.Sketch); err != nil {
				return nil, fmt.Errorf("merge sketches: %w", err)
			}
		}
	}
	out := make([]BreakdownValue, 0, len(merged))
	for v, m := range merged {
		out = append(out, BreakdownValue{Value: v, Total: m.Total, Uniques: m.Sketch.Estimate(), UniquesBound: Bound(m.Sketch)})
	}
	slices.SortFunc(out, func(a, b BreakdownValue) int {
		if a.Total != b.Total {
			if a.Total > b.Total {
				return -1
			}
			return 1
		}
		if a.Value < b.Value {
			return -1
		}
		return 1
	})
	return out, nil
}

// Top returns the n content ids with the most human events of kind (by
// hllstore.TopByTotal) or the most unique visitors (hllstore.TopByUniques)
// on the UTC day that holds day.
func (r *Reader) Top(ctx context.Context, kind pixelpb.Kind, day time.Time, by string, n int) ([]hllstore.TopEntry, error) {
	if n < 1 || n > 1000 {
		return nil, fmt.Errorf("%w: n must be 1-1000", ErrBadQuery)
	}
	if by != hllstore.TopByTotal && by != hllstore.TopByUniques {
		return nil, fmt.Errorf("%w: by must be %q or %q", ErrBadQuery, hllstore.TopByTotal, hllstore.TopByUniques)
	}
	return r.store.Top(ctx, kind, hllstore.DayStart(day.UnixMilli()), by, n)
}

// ActiveWindow is how recently an events partition must have been flushed
// to count in the watermark.
const ActiveWindow = time.Minute

// Freshness returns the watermark of the counts at now: every event up to
// its EventTime that reached the aggregators is counted (see
// hllstore.ReadWatermark for what it covers).
func (r *Reader) Freshness(ctx context.Context, now time.Time) (hllstore.Watermark, error) {
	return r.store.ReadWatermark(ctx, now, ActiveWindow)
}
