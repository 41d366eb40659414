package aggregator

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// The marks of the held records: an applied event marks every record it
// counts in for the next snapshot, and its content id's human day record
// for the next top-N raise; a day not touched for IdleEvict stays held
// while one of its records is marked. No Redis: the day is already held.
func TestMarksHoldDays(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.LateHorizon = 100 * 365 * 24 * time.Hour
	cfg.HourRetention, cfg.DayRetention, cfg.RecipientRetention = 2*cfg.LateHorizon, 2*cfg.LateHorizon, 2*cfg.LateHorizon // above the horizon, as Validate requires
	// A counts writer (never written here): records owe snapshots.
	a, err := New(cfg, nil, prometheus.NewRegistry(), nil, nil, Outputs{Counts: &kafka.Writer{}})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 28, 10, 30, 0, 0, time.UTC).UnixMilli()
	ev := &pixelpb.Event{
		ContentId: "c", Kind: pixelpb.Kind_KIND_VIEW, CampaignId: "spring", VisitorKey: 7,
		Origin: &pixelpb.Origin{ReceivedAtMs: at}, Source: &pixelpb.SourcePosition{Partition: 0, Offset: 1},
	}
	dk := dayKey(ev)
	e := newDayEntry(hllstore.NewDay())
	a.days[dk] = e
	if err := a.apply(context.Background(), []*pixelpb.Event{ev}); err != nil {
		t.Fatal(err)
	}
	top := hllstore.RecordID{Kind: pixelpb.Kind_KIND_VIEW, Hour: hllstore.DayRecord}
	if len(e.recs) != 4 || len(e.d.Records) != 4 || a.records != 4 {
		t.Fatalf("held %d records (%d in the day, %d counted), want 4", len(e.recs), len(e.d.Records), a.records)
	}
	for id, r := range e.recs {
		want := unsnap
		if id == top {
			want |= untop
		}
		if r.marks != want || r.Record != e.d.Records[id] || r.Total != 1 {
			t.Errorf("%+v: marks %b total %d, want marks %b total 1 (the day's own record)", id, r.marks, r.Total, want)
		}
	}

	// Written to Redis and idle: the marks alone keep the day held.
	e.dirty, e.bdirty = false, false
	later := time.Now().Add(2 * cfg.IdleEvict)
	a.evict(later)
	if a.days[dk] == nil {
		t.Fatal("a day owing snapshots and a top-N raise was evicted")
	}
	for id, r := range e.recs {
		if id != top {
			r.marks = 0
		}
	}
	a.evict(later)
	if a.days[dk] == nil {
		t.Fatal("a day owing a top-N raise was evicted")
	}
	e.recs[top].marks = 0
	a.evict(later)
	if a.days[dk] != nil || a.records != 0 {
		t.Fatalf("a day owing nothing stayed held (%d records counted)", a.records)
	}
}

// Without snapshots (no counts writer, or -aggregator.snapshots=false) no
// record owes one, so an idle day is evicted once its top-N raise is done;
// a mark nobody clears would hold every day ever counted in memory.
func TestNoSnapshotsNoMarks(t *testing.T) {
	t.Parallel()
	for name, out := range map[string]Outputs{"no counts writer": {}, "snapshots off": {Counts: &kafka.Writer{}}} {
		cfg := DefaultConfig()
		cfg.LateHorizon = 100 * 365 * 24 * time.Hour
		cfg.HourRetention, cfg.DayRetention, cfg.RecipientRetention = 2*cfg.LateHorizon, 2*cfg.LateHorizon, 2*cfg.LateHorizon // above the horizon, as Validate requires
		cfg.Snapshots = name != "snapshots off"
		a, err := New(cfg, nil, prometheus.NewRegistry(), nil, nil, out)
		if err != nil {
			t.Fatal(err)
		}
		ev := &pixelpb.Event{
			ContentId: "c", Kind: pixelpb.Kind_KIND_VIEW, VisitorKey: 7,
			Origin: &pixelpb.Origin{ReceivedAtMs: time.Date(2026, 11, 28, 10, 30, 0, 0, time.UTC).UnixMilli()},
			Source: &pixelpb.SourcePosition{Partition: 0, Offset: 1},
		}
		dk := dayKey(ev)
		e := newDayEntry(hllstore.NewDay())
		a.days[dk] = e
		if err := a.apply(context.Background(), []*pixelpb.Event{ev}); err != nil {
			t.Fatal(err)
		}
		top := hllstore.RecordID{Kind: pixelpb.Kind_KIND_VIEW, Hour: hllstore.DayRecord}
		for id, r := range e.recs {
			if r.marks&unsnap != 0 {
				t.Errorf("%s: %+v owes a snapshot that is never published", name, id)
			}
		}
		e.dirty, e.bdirty = false, false
		e.recs[top].marks = 0 // raised
		a.evict(time.Now().Add(2 * cfg.IdleEvict))
		if a.days[dk] != nil {
			t.Errorf("%s: an idle day owing nothing stayed held", name)
		}
	}
}

func TestPagePath(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                                      "",
		"https://news.example":                  "/",
		"https://news.example?x=1":              "/",
		"https://news.example/":                 "/",
		"https://news.example/a/b?utm_source=x": "/a/b",
		"https://news.example/a#top":            "/a",
		"http://shop.example:8080/cart":         "/cart",
		"/relative/path?q":                      "/relative/path",
		"not a url":                             "not a url",
	} {
		if got := pagePath(in); got != want {
			t.Errorf("pagePath(%q) = %q, want %q", in, got, want)
		}
	}
}

// Every report an event carries lands in its dimension: the page path, the
// landing page only for a session's first view, UTM values and the
// referrer's domain only when present.
func TestBreakdownReports(t *testing.T) {
	t.Parallel()
	ev := func(seq uint32, page, ref, utm string) *pixelpb.Event {
		return &pixelpb.Event{Kind: pixelpb.Kind_KIND_VIEW, SessionSeq: seq, PageUrl: page, ReferrerDomain: ref, UtmCampaign: utm, Country: "DE"}
	}
	b := hllstore.NewBreakdown()
	var v hllstore.Values
	for i, e := range []*pixelpb.Event{
		ev(1, "https://news.example/spring?utm_campaign=spring", "www.google.com", "spring"),
		ev(2, "https://news.example/a", "", ""),
		ev(1, "https://news.example/a", "t.co", ""),
		ev(1, "https://news.example/"+strings.Repeat("é", 80), "", ""), // 160 bytes: cut at 100, on a rune
	} {
		breakdownValues(&v, e)
		b.AddValues(&v, uint64(i+1), 50)
	}
	count := func(dim, value string) uint64 {
		if sc := b.Dims[dim][value]; sc != nil {
			return sc.Total
		}
		return 0
	}
	long := "/" + strings.Repeat("é", 49) // 99 bytes: the 100th would split an é
	for _, c := range []struct {
		dim, value string
		want       uint64
	}{
		{hllstore.DimCountry, "DE", 4},
		{hllstore.DimPage, "/spring", 1}, {hllstore.DimPage, "/a", 2}, {hllstore.DimPage, long, 1},
		{hllstore.DimLanding, "/spring", 1}, {hllstore.DimLanding, "/a", 1}, {hllstore.DimLanding, long, 1},
		{hllstore.DimReferrer, "www.google.com", 1}, {hllstore.DimReferrer, "t.co", 1},
		{hllstore.DimUTMCampaign, "spring", 1},
	} {
		if got := count(c.dim, c.value); got != c.want {
			t.Errorf("%s %q: %d, want %d", c.dim, c.value, got, c.want)
		}
	}
	// Optional dimensions hold no "unknown": events without the value are
	// not counted there.
	for _, dim := range []string{hllstore.DimReferrer, hllstore.DimUTMSource, hllstore.DimUTMMedium, hllstore.DimUTMCampaign, hllstore.DimLanding} {
		if n := count(dim, hllstore.Unknown); n != 0 {
			t.Errorf("%s counts %d events without a value", dim, n)
		}
	}
	if n := len(b.Dims[hllstore.DimLanding]); n != 3 {
		t.Errorf("landing pages %v, want 3 (the second-hit view is no landing)", b.Dims[hllstore.DimLanding])
	}
}

// Custom properties: an event counts once under each of its properties
// ("key=value"), none under "unknown" when it has none; past the bound of
// values, under "other".
func TestPropBreakdown(t *testing.T) {
	b := hllstore.NewBreakdown()
	var v hllstore.Values
	var scratch []byte
	prop := func(kv ...string) []*pixelpb.Prop {
		var out []*pixelpb.Prop
		for i := 0; i < len(kv); i += 2 {
			out = append(out, &pixelpb.Prop{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	for i, props := range [][]*pixelpb.Prop{
		prop("plan", "pro", "step", "2"),
		prop("plan", "pro"),
		prop("plan", "free"),
		nil,
		prop("plan", "team"), // the fourth value: past the bound of 3
		prop("plan", "pro"),  // an existing value still counts under itself
	} {
		countBreakdowns(&b, &v, &scratch, &pixelpb.Event{Kind: pixelpb.Kind_KIND_CUSTOM, Country: "DE", VisitorKey: uint64(i%3+1) * 0x9e3779b97f4a7c15, Props: props}, 3)
	}
	got := map[string]uint64{}
	for value, sc := range b.Dims[hllstore.DimProp] {
		got[value] = sc.Total
	}
	want := map[string]uint64{"plan=pro": 3, "step=2": 1, "plan=free": 1, hllstore.Other: 1}
	if !maps.Equal(got, want) {
		t.Errorf("prop breakdown %v, want %v", got, want)
	}
	if u := b.Dims[hllstore.DimProp]["plan=pro"].Sketch.Estimate(); u != 3 {
		t.Errorf("plan=pro uniques %d, want 3 (visitors 1, 2, 3)", u)
	}
	if n := b.Dims[hllstore.DimCountry]["DE"].Total; n != 6 {
		t.Errorf("country DE %d, want 6: every event, with or without properties", n)
	}
}

// A content id's day counts at most MaxCampaigns campaigns, those it holds
// already included; events of further campaigns count for the content id
// only.
func TestCampaignBound(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.LateHorizon = 100 * 365 * 24 * time.Hour
	cfg.HourRetention, cfg.DayRetention, cfg.RecipientRetention = 2*cfg.LateHorizon, 2*cfg.LateHorizon, 2*cfg.LateHorizon
	cfg.MaxCampaigns = 2
	a, err := New(cfg, nil, prometheus.NewRegistry(), nil, nil, Outputs{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 28, 10, 30, 0, 0, time.UTC).UnixMilli()
	day := hllstore.NewDay()
	// Loaded from Redis with one campaign already.
	day.Record(hllstore.RecordID{Kind: pixelpb.Kind_KIND_VIEW, Campaign: "old", Hour: hllstore.DayRecord}).Add(1)
	dk := hllstore.DayKey{ContentID: "c", DayStart: hllstore.DayStart(at)}
	a.days[dk] = newDayEntry(day)
	var evs []*pixelpb.Event
	for i, c := range []string{"a", "b", "old", "a", "c"} {
		evs = append(evs, &pixelpb.Event{
			ContentId: "c", Kind: pixelpb.Kind_KIND_VIEW, CampaignId: c, VisitorKey: uint64(i + 10),
			Origin: &pixelpb.Origin{ReceivedAtMs: at}, Source: &pixelpb.SourcePosition{Partition: 0, Offset: int64(i + 1)},
		})
	}
	if err := a.apply(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	total := func(campaign string) uint64 {
		if r := day.Records[hllstore.RecordID{Kind: pixelpb.Kind_KIND_VIEW, Campaign: campaign, Hour: hllstore.DayRecord}]; r != nil {
			return r.Total
		}
		return 0
	}
	if total("") != 5 || total("old") != 2 || total("a") != 2 || total("b") != 0 || total("c") != 0 {
		t.Errorf("content %d, old %d, a %d, b %d, c %d; want 5, 2, 2, 0, 0", total(""), total("old"), total("a"), total("b"), total("c"))
	}
	if n := testutil.ToFloat64(a.m.campaignsOver); n != 2 {
		t.Errorf("%v events over the bound, want 2 (b and c)", n)
	}
}

// A click counts under its destination (the links report), other events
// not at all in that dimension.
func TestDestinationBreakdown(t *testing.T) {
	b := hllstore.NewBreakdown()
	var v hllstore.Values
	var scratch []byte
	for i, ev := range []*pixelpb.Event{
		{Kind: pixelpb.Kind_KIND_CLICK, ClickDestination: "https://shop.example/sale"},
		{Kind: pixelpb.Kind_KIND_CLICK, ClickDestination: "https://shop.example/sale"},
		{Kind: pixelpb.Kind_KIND_CLICK, ClickDestination: "https://shop.example/new"},
		{Kind: pixelpb.Kind_KIND_VIEW},
	} {
		ev.VisitorKey = uint64(i+1) * 0x9e3779b97f4a7c15
		countBreakdowns(&b, &v, &scratch, ev, 50)
	}
	got := map[string]uint64{}
	for value, sc := range b.Dims[hllstore.DimDestination] {
		got[value] = sc.Total
	}
	if want := map[string]uint64{"https://shop.example/sale": 2, "https://shop.example/new": 1}; !maps.Equal(got, want) {
		t.Errorf("destination breakdown %v, want %v", got, want)
	}
}

// A visit (KIND_SESSION) counts by its own positions, in its records only:
// it moves neither the hits' positions nor the breakdowns', is never
// marked for the top-N (also when loaded from Redis), and owes snapshots
// like any record. No Redis: the day is already held.
func TestVisitMarksAndPositions(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.LateHorizon = 100 * 365 * 24 * time.Hour
	cfg.HourRetention, cfg.DayRetention, cfg.RecipientRetention = 2*cfg.LateHorizon, 2*cfg.LateHorizon, 2*cfg.LateHorizon
	a, err := New(cfg, nil, prometheus.NewRegistry(), nil, nil, Outputs{Counts: &kafka.Writer{}})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 28, 10, 30, 0, 0, time.UTC).UnixMilli()
	visit := func(o int64, index uint32, bot bool, pages uint32) *pixelpb.Event {
		return &pixelpb.Event{
			ContentId: "c", Kind: pixelpb.Kind_KIND_SESSION, VisitorKey: uint64(o)<<8 | uint64(index), Bot: bot,
			Origin:  &pixelpb.Origin{ReceivedAtMs: at},
			Source:  &pixelpb.SourcePosition{Partition: 3, Offset: o, Index: index},
			Session: &pixelpb.Session{StartMs: at, EndMs: at + 1000*int64(pages), Pages: pages, Bounce: pages == 1},
		}
	}
	day := hllstore.NewDay()
	// Loaded from Redis with visits and views counted.
	human := hllstore.RecordID{Kind: pixelpb.Kind_KIND_SESSION, Hour: hllstore.DayRecord}
	day.Record(human).Add(1)
	day.Record(hllstore.RecordID{Kind: pixelpb.Kind_KIND_VIEW, Hour: hllstore.DayRecord}).Add(1)
	day.SPos[3] = hllstore.SessionPos{Offset: 5, Index: 1}
	dk := hllstore.DayKey{ContentID: "c", DayStart: hllstore.DayStart(at)}
	a.days[dk] = newDayEntry(day)
	evs := []*pixelpb.Event{
		visit(5, 0, false, 2), visit(5, 1, false, 2), // applied already
		visit(5, 2, false, 1), visit(7, 0, true, 3), visit(7, 1, false, 4),
		visit(7, 1, false, 4), // a replay
	}
	if err := a.apply(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if len(day.Pos) != 0 || len(day.BPos) != 0 || len(day.Breakdowns) != 0 {
		t.Errorf("visits moved positions %v, breakdown positions %v or broke down %v", day.Pos, day.BPos, day.Breakdowns)
	}
	if day.SPos[3] != (hllstore.SessionPos{Offset: 7, Index: 1}) || !a.days[dk].dirty {
		t.Errorf("session positions %v (dirty %v), want 3:7.1", day.SPos, a.days[dk].dirty)
	}
	r := day.Records[human]
	if want := map[string]uint64{hllstore.SumBounces: 1, hllstore.SumPages: 5, hllstore.SumDurationMs: 5000}; r.Total != 3 || !maps.Equal(r.Sums, want) {
		t.Errorf("human visits %d sums %v, want 3 and %v", r.Total, r.Sums, want)
	}
	bot := day.Records[hllstore.RecordID{Kind: pixelpb.Kind_KIND_SESSION, Class: hllstore.Bot, Hour: hllstore.DayRecord}]
	if bot == nil || bot.Total != 1 || bot.Sums[hllstore.SumPages] != 3 || bot.Reasons != nil {
		t.Errorf("bot visits %+v, want 1 of 3 pages", bot)
	}
	for id, rec := range a.days[dk].recs {
		if id.Kind != pixelpb.Kind_KIND_SESSION {
			continue
		}
		if rec.marks != unsnap {
			t.Errorf("%+v: marks %b, want %b: a counted visit record owes a snapshot, no top-N raise", id, rec.marks, unsnap)
		}
	}
	// What apply marks when it loads a day from Redis.
	if isTopRecord(human) || !isTopRecord(hllstore.RecordID{Kind: pixelpb.Kind_KIND_VIEW, Hour: hllstore.DayRecord}) {
		t.Error("isTopRecord ranks visits, or does not rank views")
	}
	if ap, sk := testutil.ToFloat64(a.m.visitsApplied), testutil.ToFloat64(a.m.visitsSkipped); ap != 3 || sk != 3 {
		t.Errorf("visits applied %v skipped %v, want 3 and 3", ap, sk)
	}
}

// A visit without its summary is undecodable (skipped as corrupt); every
// other kind needs none.
func TestCountable(t *testing.T) {
	t.Parallel()
	src := &pixelpb.SourcePosition{}
	for _, c := range []struct {
		ev   *pixelpb.Event
		want bool
	}{
		{&pixelpb.Event{ContentId: "c", Kind: pixelpb.Kind_KIND_VIEW, Source: src}, true},
		{&pixelpb.Event{ContentId: "c", Kind: pixelpb.Kind_KIND_SESSION, Source: src, Session: &pixelpb.Session{}}, true},
		{&pixelpb.Event{ContentId: "c", Kind: pixelpb.Kind_KIND_SESSION, Source: src}, false},
		{&pixelpb.Event{Kind: pixelpb.Kind_KIND_VIEW, Source: src}, false},
		{&pixelpb.Event{ContentId: "c", Kind: pixelpb.Kind_KIND_VIEW}, false},
	} {
		if got := countable(c.ev); got != c.want {
			t.Errorf("countable(%v) = %v, want %v", c.ev, got, c.want)
		}
	}
}
