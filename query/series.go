package query

import (
	"cmp"
	"net/http"
	"strings"
	"time"

	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// SeriesResponse is the answer of the series routes.
type SeriesResponse struct {
	ContentID   string `json:"content_id,omitempty"`
	Campaign    string `json:"campaign,omitempty"`
	Granularity string `json:"granularity"`
	Class       string `json:"class"`
	// UniquesKind is the kind whose unique visitors each point carries.
	UniquesKind string        `json:"uniques_kind"`
	From        string        `json:"from"`
	To          string        `json:"to"`
	Points      []SeriesPoint `json:"points"`
	Freshness   FreshnessBody `json:"freshness"`
}

// SeriesPoint is one hour or day.
type SeriesPoint struct {
	Start        string `json:"start"`
	Impressions  uint64 `json:"impressions"`
	Views        uint64 `json:"views"`
	Clicks       uint64 `json:"clicks"`
	Conversions  uint64 `json:"conversions"`
	Opens        uint64 `json:"opens"`
	Custom       uint64 `json:"custom"`
	Uniques      uint64 `json:"uniques"`
	UniquesBound uint64 `json:"uniques_bound"`
	// Visits that started in the bucket, each counted once it ended.
	Visits uint64 `json:"visits"`
}

func (s *Server) series(w http.ResponseWriter, r *http.Request) {
	sc, ok := s.scopeParam(w, r)
	if !ok {
		return
	}
	f, ok := formatParam(w, r)
	if !ok {
		return
	}
	params := r.URL.Query()
	sq := counts.SeriesQuery{Scope: sc}
	granName := params.Get("granularity")
	switch granName {
	case "hour", "":
		granName, sq.Gran = "hour", pixelpb.Granularity_GRANULARITY_HOUR
	case "day":
		sq.Gran = pixelpb.Granularity_GRANULARITY_DAY
	default:
		writeError(w, http.StatusBadRequest, "bad granularity "+quote(granName)+": use hour or day")
		return
	}
	kindName, uk, ok := kindParam(w, r)
	if !ok {
		return
	}
	sq.UniquesKind = uk
	className := params.Get("class")
	if className == "" {
		className = "human"
	}
	if sq.Class, ok = hllstore.ParseClass(className); !ok {
		writeError(w, http.StatusBadRequest, "bad class "+quote(className)+": use human, bot, machine or unverified")
		return
	}
	if sq.From, sq.To, ok = s.rangeParams(w, r); !ok {
		return
	}
	if err := s.reader.Check(sq.Scope); err != nil {
		s.readErr(w, err, "series")
		return
	}
	fresh, err := s.reader.Freshness(r.Context(), s.now(), s.cfg.EventsPartitions)
	if err != nil {
		s.readErr(w, err, "freshness")
		return
	}
	pts, err := s.reader.Series(r.Context(), sq)
	if err != nil {
		s.readErr(w, err, "series")
		return
	}
	out := SeriesResponse{
		ContentID: sc.ContentID, Campaign: sc.Campaign, Granularity: granName, Class: className, UniquesKind: kindName,
		Points: make([]SeriesPoint, len(pts)), Freshness: freshnessBody(fresh, s.now()),
	}
	for i, p := range pts {
		out.Points[i] = seriesPoint(p)
	}
	size := time.Hour
	if sq.Gran == pixelpb.Granularity_GRANULARITY_DAY {
		size = 24 * time.Hour
	}
	if len(pts) > 0 {
		out.From = out.Points[0].Start
		out.To = time.UnixMilli(pts[len(pts)-1].Start).Add(size).UTC().Format(time.RFC3339)
	}
	if f != formatJSON {
		id := cmp.Or(sc.ContentID, "campaign-"+sc.Campaign)
		writeRows(w, f, "series-"+id+"-"+granName+"-"+className+"-"+rangeName(sq.From, sq.To), out.Freshness, seriesHeader, out.Points, seriesRow)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// seriesPoint is the answer's form of a counts.Point: every kind's total,
// the uniques, and the visits.
func seriesPoint(p counts.Point) SeriesPoint {
	return SeriesPoint{
		Start:       time.UnixMilli(p.Start).UTC().Format(time.RFC3339),
		Impressions: p.Totals[pixelpb.Kind_KIND_IMPRESSION], Views: p.Totals[pixelpb.Kind_KIND_VIEW],
		Clicks: p.Totals[pixelpb.Kind_KIND_CLICK], Conversions: p.Totals[pixelpb.Kind_KIND_CONVERSION],
		Opens: p.Totals[pixelpb.Kind_KIND_OPEN], Custom: p.Totals[pixelpb.Kind_KIND_CUSTOM],
		Uniques: p.Uniques, UniquesBound: p.UniquesBound, Visits: p.Totals[pixelpb.Kind_KIND_SESSION],
	}
}

// TopResponse is the answer of /v1/top (once available).
type TopResponse struct {
	Kind      string        `json:"kind"`
	By        string        `json:"by"`
	From      string        `json:"from"`
	To        string        `json:"to"`
	Items     []ShareItem   `json:"items"`
	Freshness FreshnessBody `json:"freshness"`
}

// ShareItem is one entry of a top list or a breakdown.
type ShareItem struct {
	Key     string `json:"key"`
	Total   uint64 `json:"total"`
	Uniques uint64 `json:"uniques"`
	// UniquesBound: the true number of visitors lies within ±UniquesBound
	// of Uniques (four standard errors; 0: exact).
	UniquesBound uint64 `json:"uniques_bound"`
}

// BreakdownResponse is the answer of /v1/breakdowns/{cid} (once available).
type BreakdownResponse struct {
	ContentID string        `json:"content_id"`
	Kind      string        `json:"kind"`
	Dimension string        `json:"dimension"`
	From      string        `json:"from"`
	To        string        `json:"to"`
	Items     []ShareItem   `json:"items"`
	Freshness FreshnessBody `json:"freshness"`
}

func limitParam(w http.ResponseWriter, r *http.Request) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 10, true
	}
	n := 0
	for i := 0; i < len(v) && n <= 100; i++ {
		if v[i] < '0' || v[i] > '9' {
			n = -1
			break
		}
		n = n*10 + int(v[i]-'0')
	}
	if n < 1 || n > 100 {
		writeError(w, http.StatusBadRequest, "bad limit "+quote(v)+": use a whole number from 1 to 100")
		return 0, false
	}
	return n, true
}

func shareItems(shares []counts.Share) []ShareItem {
	out := make([]ShareItem, len(shares))
	for i, s := range shares {
		out[i] = ShareItem{Key: s.Key, Total: s.Total, Uniques: s.Uniques, UniquesBound: s.UniquesBound}
	}
	return out
}

func (s *Server) top(w http.ResponseWriter, r *http.Request) {
	by := r.URL.Query().Get("by")
	if by == "" {
		by = "uniques"
	}
	if by != "uniques" && by != "views" {
		writeError(w, http.StatusBadRequest, "bad by "+quote(by)+": use uniques or views")
		return
	}
	kindName, kind, ok := kindParam(w, r)
	if !ok || refuseVisits(w, kind, "the top list does not rank visits (the aggregators' top-N index holds events only)") {
		return
	}
	f, ok := formatParam(w, r)
	if !ok {
		return
	}
	limit, ok := limitParam(w, r)
	if !ok {
		return
	}
	from, to, ok := s.rangeParams(w, r)
	if !ok {
		return
	}
	if err := s.reader.Check(counts.Scope{ContentID: "top", From: from, To: to}); err != nil {
		s.readErr(w, err, "top content lists")
		return
	}
	fresh, err := s.reader.Freshness(r.Context(), s.now(), s.cfg.EventsPartitions)
	if err != nil {
		s.readErr(w, err, "freshness")
		return
	}
	shares, err := s.reader.Top(r.Context(), from, to, kind, by, limit, s.allowFunc(r))
	if err != nil {
		s.readErr(w, err, "top content lists")
		return
	}
	out := TopResponse{Kind: kindName, By: by, From: from.UTC().Format(time.RFC3339), To: to.UTC().Format(time.RFC3339), Items: shareItems(shares), Freshness: freshnessBody(fresh, s.now())}
	if f != formatJSON {
		writeRows(w, f, "top-"+by+"-"+rangeName(from, to), out.Freshness, shareHeader("content_id"), out.Items, shareRow)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) breakdown(w http.ResponseWriter, r *http.Request) {
	sc, ok := s.scopeParam(w, r)
	if !ok {
		return
	}
	dim := r.URL.Query().Get("dimension")
	known := false
	for _, d := range counts.Dimensions {
		known = known || d == dim
	}
	if !known {
		writeError(w, http.StatusBadRequest, "bad dimension "+quote(dim)+": use one of "+strings.Join(counts.Dimensions, ", "))
		return
	}
	kindName, kind, ok := kindParam(w, r)
	if !ok || refuseVisits(w, kind, "visits have no breakdowns (views by landing page: dimension=landing)") {
		return
	}
	sc.Kinds = []pixelpb.Kind{kind}
	f, ok := formatParam(w, r)
	if !ok {
		return
	}
	limit, ok := limitParam(w, r)
	if !ok {
		return
	}
	if sc.From, sc.To, ok = s.rangeParams(w, r); !ok {
		return
	}
	if err := s.reader.Check(sc); err != nil {
		s.readErr(w, err, "breakdowns")
		return
	}
	fresh, err := s.reader.Freshness(r.Context(), s.now(), s.cfg.EventsPartitions)
	if err != nil {
		s.readErr(w, err, "freshness")
		return
	}
	shares, err := s.reader.Breakdown(r.Context(), sc, dim, limit)
	if err != nil {
		s.readErr(w, err, "breakdowns")
		return
	}
	out := BreakdownResponse{ContentID: sc.ContentID, Kind: kindName, Dimension: dim, From: sc.From.UTC().Format(time.RFC3339), To: sc.To.UTC().Format(time.RFC3339), Items: shareItems(shares), Freshness: freshnessBody(fresh, s.now())}
	if f != formatJSON {
		writeRows(w, f, "breakdown-"+sc.ContentID+"-"+dim+"-"+rangeName(sc.From, sc.To), out.Freshness, shareHeader(dim), out.Items, shareRow)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
