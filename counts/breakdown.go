package counts

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Breakdown splits the human events of a content id of one kind (the first
// of sc.Kinds; views when none) over the UTC days that overlap [sc.From,
// sc.To) by dimension (one of Dimensions), largest total first, at most
// limit entries. Breakdowns are kept per content id and day
// (hllstore.Breakdown); a campaign scope is a bad query. Values past the
// aggregator's bound are under "other", missing ones under "unknown".
func (r *Reader) Breakdown(ctx context.Context, sc Scope, dimension string, limit int) ([]Share, error) {
	if _, _, err := r.validate(sc); err != nil {
		return nil, err
	}
	if sc.ContentID == "" || sc.Campaign != "" {
		return nil, fmt.Errorf("%w: breakdowns are kept per content id, not per campaign", ErrBadQuery)
	}
	if !slices.Contains(Dimensions, dimension) {
		return nil, fmt.Errorf("%w: unknown dimension %q: use one of %v", ErrBadQuery, dimension, Dimensions)
	}
	kind := pixelpb.Kind_KIND_VIEW
	if len(sc.Kinds) > 0 {
		kind = sc.Kinds[0]
	}
	var keys []hllstore.BreakdownKey
	for d := hllstore.DayStart(sc.From.UnixMilli()); d < sc.To.UnixMilli(); d += hllstore.DayMs {
		keys = append(keys, hllstore.BreakdownKey{ContentID: sc.ContentID, Kind: kind, DayStart: d})
	}
	bs, err := r.store.LoadBreakdowns(ctx, keys)
	if err != nil {
		return nil, err
	}
	merged := map[string]*hllstore.SubCount{}
	for _, b := range bs {
		for v, sc := range b.Dims[dimension] {
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
	out := make([]Share, 0, len(merged))
	for v, m := range merged {
		u, b := estimate(m.Sketch)
		out = append(out, Share{Key: v, Total: m.Total, Uniques: u, UniquesBound: b})
	}
	sortShares(out, "views")
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Top lists the content ids with the most human events of kind (views,
// clicks, custom events, ...) or unique visitors of them ("views": the
// events, or "uniques") over the UTC days that overlap [from, to), those
// accepted by allow only (nil accepts all), at most limit (1-100). With
// kind custom it is the top custom events: a custom event is named by its
// content id.
//
// Candidates come from the aggregator's daily top-N index (their daily scores
// summed); the best 3×limit of them are then counted exactly over the whole
// range, so uniques are visitors over the range, not a sum of daily uniques.
func (r *Reader) Top(ctx context.Context, from, to time.Time, kind pixelpb.Kind, by string, limit int, allow func(string) bool) ([]Share, error) {
	if _, _, err := r.validate(Scope{ContentID: "top", From: from, To: to}); err != nil {
		return nil, err
	}
	if limit < 1 || limit > 100 {
		return nil, fmt.Errorf("%w: limit must be 1-100", ErrBadQuery)
	}
	index := hllstore.TopByTotal
	switch by {
	case "views":
	case "uniques":
		index = hllstore.TopByUniques
	default:
		return nil, fmt.Errorf("%w: by must be views or uniques", ErrBadQuery)
	}
	summed := map[string]uint64{}
	for d := hllstore.DayStart(from.UnixMilli()); d < to.UnixMilli(); d += hllstore.DayMs {
		// Read deeper than limit: allow may filter out other tenants' ids.
		day, err := r.store.Top(ctx, kind, d, index, min(10*limit, hllstore.TopDepth))
		if err != nil {
			return nil, err
		}
		for _, e := range day {
			if allow == nil || allow(e.ContentID) {
				summed[e.ContentID] += e.Score
			}
		}
	}
	cands := make([]Share, 0, len(summed))
	for id, s := range summed {
		cands = append(cands, Share{Key: id, Total: s, Uniques: s})
	}
	sortShares(cands, by)
	if len(cands) > 3*limit {
		cands = cands[:3*limit]
	}
	out := make([]Share, 0, len(cands))
	for _, c := range cands {
		sum, err := r.Summary(ctx, Scope{ContentID: c.Key, From: from, To: to, Kinds: []pixelpb.Kind{kind}, Classes: []hllstore.Class{hllstore.Human}})
		if err != nil {
			return nil, err
		}
		res := sum.Get(hllstore.Human, kind)
		out = append(out, Share{Key: c.Key, Total: res.Total, Uniques: res.Uniques, UniquesBound: res.UniquesBound})
	}
	sortShares(out, by)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// sortShares orders by total ("views") or uniques, largest first, then by key.
func sortShares(s []Share, by string) {
	slices.SortFunc(s, func(a, b Share) int {
		x, y := a.Total, b.Total
		if by == "uniques" {
			x, y = a.Uniques, b.Uniques
		}
		switch {
		case x > y:
			return -1
		case x < y:
			return 1
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
}
