package query

import (
	"net/http"
	"slices"

	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Visits: the processor closes a visitor's session after a timeout without
// a hit (30 minutes by default) and, when it had a page view, writes it as
// an event of kind KIND_SESSION: a visit, counted under the content id it
// landed on and the hour it started. The aggregators count visits like
// events (Total: visits, the sketch: distinct visitors) and add up their
// bounces, durations and pages (hllstore.Count.Sums). The API names the
// kind "session"; the top lists and breakdowns do not hold visits.

// VisitStats are the visits of one traffic class.
type VisitStats struct {
	// Visits is the exact number of visits that started in the range and
	// have ended.
	Visits uint64 `json:"visits"`
	// Visitors is the estimated number of distinct visitors who made them;
	// the true number lies within ±VisitorsBound (four standard errors).
	Visitors      uint64 `json:"visitors"`
	VisitorsBound uint64 `json:"visitors_bound"`
	// Bounces are visits of at most one page view; BounceRate is bounces /
	// visits.
	Bounces    uint64  `json:"bounces"`
	BounceRate float64 `json:"bounce_rate"`
	// MeanDurationS is the mean time from a visit's first hit to its last,
	// in seconds; PagesPerVisit the mean page views of a visit. All rates
	// are 0 when there are no visits.
	MeanDurationS float64 `json:"mean_duration_s"`
	PagesPerVisit float64 `json:"pages_per_visit"`
}

// visitStats reads the visits of a Result of kind KIND_SESSION.
func visitStats(r counts.Result) VisitStats {
	v := VisitStats{Visits: r.Total, Visitors: r.Uniques, VisitorsBound: r.UniquesBound, Bounces: r.Sums[hllstore.SumBounces]}
	v.BounceRate = counts.Ratio(v.Bounces, v.Visits)
	v.MeanDurationS = counts.Ratio(r.Sums[hllstore.SumDurationMs], v.Visits) / 1000
	v.PagesPerVisit = counts.Ratio(r.Sums[hllstore.SumPages], v.Visits)
	return v
}

// eventKinds are the kinds of counts.Kinds that count events: visits are
// not events, so they stay out of event totals and reasons.
var eventKinds = slices.DeleteFunc(slices.Clone(counts.Kinds), isVisit)

// statsKinds are the kinds a stats answer reads: every event kind and
// visits.
var statsKinds = append(slices.Clone(eventKinds), pixelpb.Kind_KIND_SESSION)

func isVisit(k pixelpb.Kind) bool { return k == pixelpb.Kind_KIND_SESSION }

// refuseVisits answers 400 when kind is visits, which the route does not
// hold (what says so: "the top list does not rank visits"), and points to
// where visits are; it returns whether it answered.
func refuseVisits(w http.ResponseWriter, kind pixelpb.Kind, what string) bool {
	if !isVisit(kind) {
		return false
	}
	writeError(w, http.StatusBadRequest, "kind session: "+what+"; a content id's or a campaign's visits are in "+
		"/v1/stats/{cid} and /v1/campaigns/{campaign}/stats (visits of each class)")
	return true
}
