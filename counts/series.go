package counts

import (
	"context"
	"fmt"
	"time"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// MaxSeriesPoints bounds the points of one Series: 31 days of hours, or
// about 2 years of days.
const MaxSeriesPoints = 744

// Point is one bucket of a Series.
type Point struct {
	// Start of the bucket, Unix milliseconds UTC.
	Start int64
	// Totals per kind (exact); zero kinds are absent.
	Totals map[pixelpb.Kind]uint64
	// Uniques of the series' UniquesKind in this bucket, with its bound.
	Uniques, UniquesBound uint64
}

// SeriesQuery selects a Series.
type SeriesQuery struct {
	Scope
	// Gran is the bucket length: hour or day. Day series need day-aligned
	// From and To (they are widened to whole days).
	Gran  pixelpb.Granularity
	Class hllstore.Class
	// UniquesKind is the kind whose unique visitors each point carries.
	UniquesKind pixelpb.Kind
}

// Series counts sq per hour or day bucket in one Redis round trip: every
// kind's total and the uniques of one kind, for one traffic class. Buckets
// with nothing counted are present with zeros, so a chart has no gaps.
func (r *Reader) Series(ctx context.Context, sq SeriesQuery) ([]Point, error) {
	size, gran := hllstore.HourMs, hllstore.GranularityHour
	if sq.Gran == pixelpb.Granularity_GRANULARITY_DAY {
		size, gran = hllstore.DayMs, hllstore.GranularityDay
		sq.From = time.UnixMilli(hllstore.DayStart(sq.From.UnixMilli())).UTC()
		if end := sq.To.UTC(); !end.Equal(end.Truncate(24 * time.Hour)) {
			sq.To = end.Truncate(24 * time.Hour).Add(24 * time.Hour)
		}
	} else if sq.Gran != pixelpb.Granularity_GRANULARITY_HOUR {
		return nil, fmt.Errorf("%w: granularity must be hour or day", ErrBadQuery)
	}
	from, to, err := r.validate(sq.Scope)
	if err != nil {
		return nil, err
	}
	n := (to.UnixMilli() - from.UnixMilli()) / size
	if n > MaxSeriesPoints {
		return nil, fmt.Errorf("%w: %d points at this granularity, more than the limit of %d: shorten the range or use granularity=day", ErrBadQuery, n, MaxSeriesPoints)
	}
	type slot struct {
		point int
		kind  pixelpb.Kind
	}
	var keys []hllstore.Key
	var slots []slot
	cache := map[int64][]string{}
	points := make([]Point, n)
	for i := range points {
		start := from.UnixMilli() + int64(i)*size
		points[i].Start = start
		contents, err := r.scopeContents(ctx, sq.Scope, hllstore.DayStart(start), cache)
		if err != nil {
			return nil, err
		}
		for _, c := range contents {
			for _, k := range Kinds {
				keys = append(keys, hllstore.Key{ContentID: c, Campaign: sq.Campaign, Kind: k, Class: sq.Class, Gran: gran, Start: start})
				slots = append(slots, slot{i, k})
			}
		}
	}
	recs, err := r.store.Load(ctx, keys)
	if err != nil {
		return nil, err
	}
	uniq := make([]*accumulator, n)
	for i := range recs {
		s := slots[i]
		p := &points[s.point]
		if recs[i].Total > 0 {
			if p.Totals == nil {
				p.Totals = map[pixelpb.Kind]uint64{}
			}
			p.Totals[s.kind] += recs[i].Total
		}
		if s.kind == sq.UniquesKind {
			if uniq[s.point] == nil {
				uniq[s.point] = newAccumulator()
			}
			if err := uniq[s.point].add(&recs[i]); err != nil {
				return nil, err
			}
		}
	}
	for i, a := range uniq {
		if a != nil {
			res := a.result()
			points[i].Uniques, points[i].UniquesBound = res.Uniques, res.UniquesBound
		}
	}
	return points, nil
}
