package counts

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Kinds lists the kinds a Summary and a Series count, in display order: the
// event kinds, then visits (KIND_SESSION: sessions with a page view, one
// per visit, under the content id and campaign it landed on and the hour it
// started). A visits Result has Total the visits, Uniques the visitors who
// made them, and Sums their bounces, durations and pages
// (hllstore.SumBounces, SumDurationMs, SumPages); a Series point's Totals
// hold the visits of its bucket. Visits are not events: a sum over event
// kinds leaves KIND_SESSION out.
var Kinds = []pixelpb.Kind{
	pixelpb.Kind_KIND_IMPRESSION, pixelpb.Kind_KIND_VIEW, pixelpb.Kind_KIND_CLICK,
	pixelpb.Kind_KIND_CONVERSION, pixelpb.Kind_KIND_OPEN, pixelpb.Kind_KIND_CUSTOM,
	pixelpb.Kind_KIND_SESSION,
}

// Classes lists the traffic classes a Summary counts apart.
var Classes = []hllstore.Class{hllstore.Human, hllstore.Bot, hllstore.Machine, hllstore.Unverified}

// Scope selects what a Summary or a Series counts: a content id, or a campaign
// (optionally on one content id), over [From, To), hour-aligned.
type Scope struct {
	ContentID string
	Campaign  string
	From, To  time.Time
	// Allow, when set, keeps only the content ids it accepts from a
	// campaign's index: a tenant sees only its own content in a campaign
	// that other tenants' pages also carry. It is not consulted for an
	// explicit ContentID (the caller checks that one).
	Allow func(contentID string) bool
	// Kinds and Classes narrow what a Summary reads and answers (nil: every
	// one of Kinds and Classes). Series ignores them.
	Kinds   []pixelpb.Kind
	Classes []hllstore.Class
}

// Summary holds every kind and class of a Scope, each as a Result.
type Summary struct {
	// By is indexed by class, then kind.
	By map[hllstore.Class]map[pixelpb.Kind]Result
}

// Get returns the Result of class c and kind k (zero when nothing counted).
func (s Summary) Get(c hllstore.Class, k pixelpb.Kind) Result { return s.By[c][k] }

// validate checks a scope and returns its hour-aligned bounds.
func (r *Reader) validate(sc Scope) (from, to time.Time, err error) {
	from, to = sc.From.UTC().Truncate(time.Hour), sc.To.UTC().Truncate(time.Hour)
	switch {
	case sc.ContentID == "" && sc.Campaign == "":
		return from, to, fmt.Errorf("%w: a content id or a campaign is required", ErrBadQuery)
	case !to.After(from):
		return from, to, fmt.Errorf("%w: empty range: to must be after from (to is exclusive, hour resolution)", ErrBadQuery)
	case to.Sub(from) > r.MaxRange:
		return from, to, fmt.Errorf("%w: range of %.1f days is longer than the limit of %.0f days", ErrBadQuery, to.Sub(from).Hours()/24, r.MaxRange.Hours()/24)
	}
	return from, to, nil
}

// scopeContents lists the content ids holding sc's counts on a day.
func (r *Reader) scopeContents(ctx context.Context, sc Scope, dayStart int64, cache map[int64][]string) ([]string, error) {
	if sc.ContentID != "" {
		return []string{sc.ContentID}, nil
	}
	if ids, ok := cache[dayStart]; ok {
		return ids, nil
	}
	ids, err := r.store.CampaignContents(ctx, sc.Campaign, dayStart)
	if err != nil {
		return nil, err
	}
	if sc.Allow != nil {
		kept := ids[:0]
		for _, id := range ids {
			if sc.Allow(id) {
				kept = append(kept, id)
			}
		}
		ids = kept
	}
	cache[dayStart] = ids
	return ids, nil
}

// weekContents lists the content ids holding sc's counts on any day of the
// week starting at weekStart.
func (r *Reader) weekContents(ctx context.Context, sc Scope, weekStart int64, cache map[int64][]string) ([]string, error) {
	if sc.ContentID != "" {
		return []string{sc.ContentID}, nil
	}
	var out []string
	seen := map[string]bool{}
	for d := range 7 {
		ids, err := r.scopeContents(ctx, sc, weekStart+int64(d)*hllstore.DayMs, cache)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out, nil
}

// bucket is one covering bucket of a range.
type bucket struct {
	gran  hllstore.Granularity
	start int64
}

// cover returns the buckets of [from, to): whole days where they fit, hours
// at the ends; with weeks, whole Monday-to-Sunday weeks of final days
// (ended before finalBefore) replace their seven days.
func cover(from, to time.Time, weeks bool, finalBefore int64) []bucket {
	hours, days := Cover(from.UnixMilli(), to.UnixMilli())
	out := make([]bucket, 0, len(hours)+len(days))
	for i := 0; i < len(days); i++ {
		d := days[i]
		if weeks && d == hllstore.WeekStart(d) && i+6 < len(days) && days[i+6] == d+6*hllstore.DayMs &&
			d+hllstore.WeekMs <= finalBefore {
			out = append(out, bucket{hllstore.GranularityWeek, d})
			i += 6
			continue
		}
		out = append(out, bucket{hllstore.GranularityDay, d})
	}
	for _, h := range hours {
		out = append(out, bucket{hllstore.GranularityHour, h})
	}
	return out
}

// Summary counts sc in one Redis round trip (plus one per day for a
// campaign's index): per (class, kind) of sc.Classes and sc.Kinds (default
// all) the exact total, the merged unique estimate over the range with its
// bound, reasons, orders, value and named sums. It is the one query model of the
// package: a single count is a Summary narrowed to one kind and class.
//
// A range is covered by whole UTC days where it can and by hours at its
// ragged ends (Cover); each day's or hour's records of every kind and class
// are one HMGET of the fields needed.
func (r *Reader) Summary(ctx context.Context, sc Scope) (Summary, error) {
	from, to, err := r.validate(sc)
	if err != nil {
		return Summary{}, err
	}
	type slot struct {
		class hllstore.Class
		kind  pixelpb.Kind
	}
	kinds, classes := sc.Kinds, sc.Classes
	if kinds == nil {
		kinds = Kinds
	}
	if classes == nil {
		classes = Classes
	}
	var keys []hllstore.Key
	var slots []slot
	cache := map[int64][]string{}
	// Week rollups hold every record of a content id's days, its campaigns'
	// too: a campaign's week is read from the rollups of the content ids
	// its index lists on any day of the week.
	weeks := r.Final > 0
	var finalBefore int64
	if weeks {
		finalBefore = r.Now().Add(-r.Final).UnixMilli()
	}
	for _, b := range cover(from, to, weeks, finalBefore) {
		var contents []string
		if b.gran == hllstore.GranularityWeek {
			contents, err = r.weekContents(ctx, sc, b.start, cache)
		} else {
			contents, err = r.scopeContents(ctx, sc, hllstore.DayStart(b.start), cache)
		}
		if err != nil {
			return Summary{}, err
		}
		for _, c := range contents {
			for _, cl := range classes {
				for _, k := range kinds {
					keys = append(keys, hllstore.Key{ContentID: c, Campaign: sc.Campaign, Kind: k, Class: cl, Gran: b.gran, Start: b.start})
					slots = append(slots, slot{cl, k})
				}
			}
		}
	}
	recs, err := r.store.Load(ctx, keys)
	if err != nil {
		return Summary{}, err
	}
	// Merge per (class, kind), the slots in parallel: over a long range
	// merging dense sketches is most of the work.
	bySlot := map[slot][]int{}
	var order []slot
	for i, s := range slots {
		if bySlot[s] == nil {
			order = append(order, s)
		}
		bySlot[s] = append(bySlot[s], i)
	}
	results := make([]Result, len(order))
	errs := make([]error, len(order))
	var wg sync.WaitGroup
	for j, s := range order {
		wg.Go(func() {
			a := newAccumulator()
			if err := a.addAll(recs, bySlot[s]); err != nil {
				errs[j] = err
				return
			}
			results[j] = a.result()
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return Summary{}, err
	}
	out := Summary{By: map[hllstore.Class]map[pixelpb.Kind]Result{}}
	for _, cl := range classes {
		out.By[cl] = map[pixelpb.Kind]Result{}
	}
	for j, s := range order {
		out.By[s.class][s.kind] = results[j]
	}
	return out, nil
}

// Check reports the problem with sc (ErrBadQuery) without reading Redis, so
// a caller can reject a bad request before other reads.
func (r *Reader) Check(sc Scope) error {
	_, _, err := r.validate(sc)
	return err
}
