package query

import (
	"net/http"
	"time"

	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/money"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// StatsResponse is the answer of the stats routes. The top-level count is
// the one selected by kind and class (default: human views; kind=session:
// visits and their visitors); human, bot, machine and unverified hold every
// kind of each traffic class, and its visits.
type StatsResponse struct {
	ContentID string `json:"content_id,omitempty"`
	Campaign  string `json:"campaign,omitempty"`
	Kind      string `json:"kind"`
	Class     string `json:"class"`
	From      string `json:"from"`
	To        string `json:"to"`
	// Total is the exact number of events of the kind (views for kind=view).
	Total uint64 `json:"total"`
	// Uniques is the estimated number of distinct visitors over the range;
	// the true number lies within ±UniquesBound (four standard errors).
	Uniques      uint64 `json:"uniques"`
	UniquesBound uint64 `json:"uniques_bound"`
	Exact        bool   `json:"uniques_exact"`
	// Reasons: events per reason: bot reasons (class bot or machine), why
	// they did not verify (class unverified; human under a prefer policy).
	Reasons map[string]uint64 `json:"reasons,omitempty"`
	// Orders and Value: distinct orders and value per currency, in currency
	// units as exact decimals (kind=conversion).
	Orders uint64               `json:"orders,omitempty"`
	Value  map[string]money.Sum `json:"value,omitempty"`

	Human   ClassStats `json:"human"`
	Bot     ClassStats `json:"bot"`
	Machine ClassStats `json:"machine"`
	// Unverified: hits of content ids whose signed-pixel policy is require
	// that were not verified signed pixels, with why in Reasons (unsigned,
	// unknown_key, bad_signature, expired, unsigned_suffix). Under prefer
	// they are in Human, and Human.Reasons counts them by the same reasons.
	Unverified ClassStats    `json:"unverified"`
	Freshness  FreshnessBody `json:"freshness"`
}

// KindStats is one event kind's count.
type KindStats struct {
	Total        uint64 `json:"total"`
	Uniques      uint64 `json:"uniques"`
	UniquesBound uint64 `json:"uniques_bound"`
}

// ClassStats holds every kind of one traffic class, and the funnel rates.
type ClassStats struct {
	Impressions KindStats `json:"impressions"`
	Views       KindStats `json:"views"`
	Clicks      KindStats `json:"clicks"`
	Conversions KindStats `json:"conversions"`
	Opens       KindStats `json:"opens"`
	Custom      KindStats `json:"custom"`
	// CTR is clicks / impressions, ConversionRate conversions / clicks
	// (0 when the denominator is 0).
	CTR            float64 `json:"ctr"`
	ConversionRate float64 `json:"conversion_rate"`
	// Orders is the number of distinct orders, Revenue their value per
	// currency in currency units, an exact decimal (a JSON number with at
	// most six digits after the point).
	Orders  uint64               `json:"orders"`
	Revenue map[string]money.Sum `json:"revenue"`
	// Reasons counts bot and machine events per bot reason, and unverified
	// events (human ones under a prefer policy) per reason they did not
	// verify.
	Reasons map[string]uint64 `json:"reasons,omitempty"`
	// Visits are the class's visits (sessions with a page view) that
	// landed on the content id and started in the range, each counted once
	// it ended.
	Visits VisitStats `json:"visits"`
}

func classStats(sum counts.Summary, c hllstore.Class) ClassStats {
	ks := func(k pixelpb.Kind) KindStats {
		r := sum.Get(c, k)
		return KindStats{Total: r.Total, Uniques: r.Uniques, UniquesBound: r.UniquesBound}
	}
	out := ClassStats{
		Impressions: ks(pixelpb.Kind_KIND_IMPRESSION), Views: ks(pixelpb.Kind_KIND_VIEW),
		Clicks: ks(pixelpb.Kind_KIND_CLICK), Conversions: ks(pixelpb.Kind_KIND_CONVERSION),
		Opens: ks(pixelpb.Kind_KIND_OPEN), Custom: ks(pixelpb.Kind_KIND_CUSTOM),
		Revenue: map[string]money.Sum{},
		Visits:  visitStats(sum.Get(c, pixelpb.Kind_KIND_SESSION)),
	}
	out.CTR = counts.Ratio(out.Clicks.Total, out.Impressions.Total)
	out.ConversionRate = counts.Ratio(out.Conversions.Total, out.Clicks.Total)
	conv := sum.Get(c, pixelpb.Kind_KIND_CONVERSION)
	out.Orders = conv.Orders
	for cur, sum := range conv.Value {
		out.Revenue[cur] = sum
	}
	for _, k := range eventKinds {
		for reason, n := range sum.Get(c, k).Reasons {
			if out.Reasons == nil {
				out.Reasons = map[string]uint64{}
			}
			out.Reasons[reason] += n
		}
	}
	return out
}

// scopeParam reads the {cid} or {campaign} path value, checks its form and,
// for a content id, the caller's tenant.
func (s *Server) scopeParam(w http.ResponseWriter, r *http.Request) (counts.Scope, bool) {
	sc := counts.Scope{ContentID: r.PathValue("cid"), Campaign: r.PathValue("campaign")}
	for _, id := range []string{sc.ContentID, sc.Campaign} {
		if id != "" && !validID(id) {
			writeError(w, http.StatusBadRequest, badIDMsg)
			return sc, false
		}
	}
	if sc.ContentID != "" && !s.checkContent(w, r, sc.ContentID) {
		return sc, false
	}
	sc.Allow = s.allowFunc(r)
	return sc, true
}

// kindParam is the request's kind parameter (default view) and its name; on
// a bad one it answers 400 and returns false.
func kindParam(w http.ResponseWriter, r *http.Request) (string, pixelpb.Kind, bool) {
	name := r.URL.Query().Get("kind")
	if name == "" {
		name = "view"
	}
	kind, ok := kinds[name]
	if !ok {
		writeError(w, http.StatusBadRequest, "bad kind "+quote(name)+": use one of impression, view, click, conversion, open, custom, session (visits)")
	}
	return name, kind, ok
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	sc, ok := s.scopeParam(w, r)
	if !ok {
		return
	}
	params := r.URL.Query()
	kindName, kind, ok := kindParam(w, r)
	if !ok {
		return
	}
	className := params.Get("class")
	if className == "" {
		className = "human"
	}
	class, ok := hllstore.ParseClass(className)
	if !ok {
		writeError(w, http.StatusBadRequest, "bad class "+quote(className)+": use human, bot, machine or unverified")
		return
	}
	if sc.From, sc.To, ok = s.rangeParams(w, r); !ok {
		return
	}
	if err := s.reader.Check(sc); err != nil {
		s.readErr(w, err, "stats")
		return
	}
	sc.Kinds = statsKinds
	// The watermark is read before the counts: the counts then hold at
	// least everything it promises.
	fresh, err := s.reader.Freshness(r.Context(), s.now(), s.cfg.EventsPartitions)
	if err != nil {
		s.readErr(w, err, "freshness")
		return
	}
	sum, err := s.reader.Summary(r.Context(), sc)
	if err != nil {
		s.readErr(w, err, "stats")
		return
	}
	head := sum.Get(class, kind)
	out := StatsResponse{
		ContentID: sc.ContentID, Campaign: sc.Campaign, Kind: kindName, Class: className,
		From: sc.From.UTC().Truncate(time.Hour).Format(time.RFC3339), To: sc.To.UTC().Truncate(time.Hour).Format(time.RFC3339),
		Total: head.Total, Uniques: head.Uniques, UniquesBound: head.UniquesBound, Exact: head.UniquesBound == 0,
		Reasons: head.Reasons, Orders: head.Orders, Value: head.Value,
		Human: classStats(sum, hllstore.Human), Bot: classStats(sum, hllstore.Bot), Machine: classStats(sum, hllstore.Machine),
		Unverified: classStats(sum, hllstore.Unverified),
		Freshness:  freshnessBody(fresh, s.now()),
	}
	writeJSON(w, http.StatusOK, out)
}

// FreshnessBody is the watermark in every answer.
type FreshnessBody struct {
	// CompleteUntil is the event time (RFC 3339) before which every event
	// read by the aggregators is counted; null while no aggregator writes a
	// watermark.
	CompleteUntil *string `json:"complete_until"`
	// LagSeconds is now minus CompleteUntil; null when unknown.
	LagSeconds *float64 `json:"lag_seconds"`
	// Status: complete, partial (not every partition reported) or unknown.
	Status             string `json:"status"`
	Partitions         int    `json:"partitions"`
	ExpectedPartitions int    `json:"expected_partitions"`
	// AsOf is when the answer was computed.
	AsOf string `json:"as_of"`
}

func freshnessBody(f counts.Freshness, now time.Time) FreshnessBody {
	b := FreshnessBody{Status: f.Status, Partitions: f.Partitions, ExpectedPartitions: f.Expected, AsOf: now.UTC().Format(time.RFC3339Nano)}
	if !f.CompleteUntil.IsZero() {
		cu := f.CompleteUntil.Format(time.RFC3339Nano)
		lag := f.Lag.Seconds()
		b.CompleteUntil, b.LagSeconds = &cu, &lag
	}
	return b
}

func (s *Server) freshnessOnly(w http.ResponseWriter, r *http.Request) {
	fresh, err := s.reader.Freshness(r.Context(), s.now(), s.cfg.EventsPartitions)
	if err != nil {
		s.readErr(w, err, "freshness")
		return
	}
	writeJSON(w, http.StatusOK, freshnessBody(fresh, s.now()))
}
