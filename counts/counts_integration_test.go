//go:build integration

package counts

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/hllstore/hllstoretest"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/internal/redisconn"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Records are written for visitors 0..n-1 of content "a" in every hour of
// two days (and matching day records), and for a campaign on "a" and "b".
// Ranges at hour resolution then add exactly the hours they cover.
func TestStatsRanges(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	ctx := context.Background()
	d0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var writes []hllstoretest.Write
	day := map[int64]*hllstore.Record{}
	visitor := uint64(0)
	for h := range 48 {
		start := d0.Add(time.Duration(h) * time.Hour).UnixMilli()
		ds := hllstore.DayStart(start)
		if day[ds] == nil {
			r := hllstore.NewRecord()
			day[ds] = &r
		}
		hr := hllstore.NewRecord()
		for range 10 { // 10 events, 5 distinct visitors per hour, all new
			hr.Add(mix(visitor / 2))
			day[ds].Add(mix(visitor / 2))
			visitor++
		}
		writes = append(writes, hllstoretest.Write{Key: hllstore.Key{ContentID: "a", Kind: pixelpb.Kind_KIND_VIEW, Gran: hllstore.GranularityHour, Start: start}, Record: &hr})
	}
	for ds, r := range day {
		writes = append(writes, hllstoretest.Write{Key: hllstore.Key{ContentID: "a", Kind: pixelpb.Kind_KIND_VIEW, Gran: hllstore.GranularityDay, Start: ds}, Record: r})
	}
	// Campaign "spring": 7 clicks on a, 4 on b, on day 0.
	for cid, n := range map[string]int{"a": 7, "b": 4} {
		r := hllstore.NewRecord()
		for i := range n {
			r.Add(mix(uint64(1000 + i)))
		}
		writes = append(writes, hllstoretest.Write{Key: hllstore.Key{ContentID: cid, Campaign: "spring", Kind: pixelpb.Kind_KIND_CLICK, Gran: hllstore.GranularityDay, Start: d0.UnixMilli()}, Record: &r})
	}
	if err := hllstoretest.Put(ctx, store, writes); err != nil {
		t.Fatal(err)
	}

	r := NewReader(store)
	f := func(q Scope, wantTotal, wantUniques uint64) {
		t.Helper()
		kind := pixelpb.Kind_KIND_VIEW
		if q.Campaign != "" {
			kind = pixelpb.Kind_KIND_CLICK
		}
		q.Kinds = []pixelpb.Kind{kind}
		sum, err := r.Summary(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		res := sum.Get(hllstore.Human, kind)
		if res.Total != wantTotal || res.Uniques != wantUniques || res.UniquesBound != 0 {
			t.Errorf("%s..%s %q/%q: total %d uniques %d±%d, want %d and %d exactly", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339),
				q.ContentID, q.Campaign, res.Total, res.Uniques, res.UniquesBound, wantTotal, wantUniques)
		}
	}
	at := func(h int) time.Time { return d0.Add(time.Duration(h) * time.Hour) }
	f(Scope{ContentID: "a", From: at(0), To: at(48)}, 480, 240)                     // two whole days
	f(Scope{ContentID: "a", From: at(22), To: at(26)}, 40, 20)                      // hours across midnight
	f(Scope{ContentID: "a", From: at(3), To: at(27)}, 240, 120)                     // a day's worth, not aligned
	f(Scope{ContentID: "a", From: at(47).Add(30 * time.Minute), To: at(60)}, 10, 5) // truncated to the hour; empty hours count 0
	f(Scope{Campaign: "spring", From: at(0), To: at(24)}, 11, 7)                    // merged over content ids
	f(Scope{Campaign: "spring", ContentID: "b", From: at(0), To: at(24)}, 4, 4)     // one content id of a campaign

	if _, err := r.Summary(ctx, Scope{ContentID: "a", From: at(5), To: at(5)}); !errors.Is(err, ErrBadQuery) {
		t.Fatalf("empty range: %v", err)
	}
}

func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	return x ^ x>>33
}

// Week rollups give the same counts as the days they replace, when built
// (cold) and when read back (warm), and are used only for final days.
func TestWeekRollups(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	ctx := context.Background()
	d0 := time.Date(2026, 9, 2, 0, 0, 0, 0, time.UTC) // a Wednesday
	var writes []hllstoretest.Write
	for day := range 24 {
		start := d0.Add(time.Duration(day) * 24 * time.Hour).UnixMilli()
		for _, kc := range []struct {
			kind  pixelpb.Kind
			class hllstore.Class
			n     int
		}{{pixelpb.Kind_KIND_VIEW, hllstore.Human, 300 + 40*day}, {pixelpb.Kind_KIND_CONVERSION, hllstore.Human, 3}, {pixelpb.Kind_KIND_VIEW, hllstore.Bot, 5},
			{pixelpb.Kind_KIND_SESSION, hllstore.Human, 20 + day}} {
			r := hllstore.NewRecord()
			for i := range kc.n {
				r.Add(mix(uint64(i + 17*day))) // visitors overlap between days
				if kc.kind == pixelpb.Kind_KIND_SESSION {
					r.AddSum(hllstore.SumPages, uint64(1+i%3))
					r.AddSum(hllstore.SumDurationMs, uint64(i%3)*45_000)
					if i%3 == 0 {
						r.AddSum(hllstore.SumBounces, 1)
					}
				}
			}
			if kc.kind == pixelpb.Kind_KIND_CONVERSION {
				r.AddOrder(fmt.Sprint("o", day), "EUR", 1_000_000)
			}
			if kc.class == hllstore.Bot {
				r.AddReason("headless")
			}
			writes = append(writes, hllstoretest.Write{Key: hllstore.Key{ContentID: "w", Kind: kc.kind, Class: kc.class, Gran: hllstore.GranularityDay, Start: start}, Record: &r})
		}
	}
	if err := hllstoretest.Put(ctx, store, writes); err != nil {
		t.Fatal(err)
	}
	sc := Scope{ContentID: "w", From: d0.Add(5 * time.Hour), To: d0.Add(23*24*time.Hour + 3*time.Hour)}
	days := NewReader(store)
	days.Final = 0
	want, err := days.Summary(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	weeks := NewReader(store)
	for _, phase := range []string{"cold", "warm"} {
		got, err := weeks.Summary(ctx, sc)
		if err != nil {
			t.Fatal(err)
		}
		for _, cl := range Classes {
			for _, k := range Kinds {
				g, w := got.Get(cl, k), want.Get(cl, k)
				if g.Total != w.Total || g.Uniques != w.Uniques || g.Orders != w.Orders || g.Value["EUR"] != w.Value["EUR"] || g.Reasons["headless"] != w.Reasons["headless"] ||
					!maps.Equal(g.Sums, w.Sums) {
					t.Fatalf("%s %v %v: weeks %+v, days %+v", phase, cl, k, g, w)
				}
			}
		}
	}
	if w := want.Get(hllstore.Human, pixelpb.Kind_KIND_VIEW); w.Total == 0 || w.Orders != 0 {
		t.Fatalf("nothing counted: %+v", w)
	}
	if w := want.Get(hllstore.Human, pixelpb.Kind_KIND_SESSION); w.Total == 0 || w.Sums[hllstore.SumPages] == 0 || w.Sums[hllstore.SumBounces] == 0 {
		t.Fatalf("no visits counted: %+v", w)
	}
	// Two whole weeks lie in the range (Mondays 7 and 14 September).
	n := pipetest.RedisKeys(t, rdb, prefix+":c:{w:w*")
	if len(n) != 2 {
		t.Fatalf("week rollups %v, want 2", n)
	}
	// A content id nobody hit gets no rollups (reads create no keys).
	nobody := sc
	nobody.ContentID = "nobody"
	if _, err := weeks.Summary(ctx, nobody); err != nil {
		t.Fatal(err)
	}
	if n := pipetest.RedisKeys(t, rdb, prefix+":c:{nobody:*"); len(n) != 0 {
		t.Fatalf("a read of an unhit content id wrote %v", n)
	}
	// Days that may still change are not rolled up.
	recent := NewReader(store)
	recent.Now = func() time.Time { return d0.Add(20 * 24 * time.Hour) }
	if _, err := redisconn.Del(ctx, rdb, n...); err != nil {
		t.Fatal(err)
	}
	if _, err := recent.Summary(ctx, sc); err != nil {
		t.Fatal(err)
	}
	if n := pipetest.RedisKeys(t, rdb, prefix+":c:{w:w*"); len(n) != 1 {
		t.Fatalf("week rollups %v with only the first week final, want 1", n)
	}
}

// A day written after its week's rollup was built (an event accepted late,
// by an aggregator whose clock or late horizon differs) is not hidden by
// the rollup: the read sees the rollup is stale and builds it again. A
// campaign's weeks read its content ids' rollups and agree with its days.
func TestStaleWeekRollupIsRebuilt(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	ctx := context.Background()
	week := time.Date(2026, 9, 7, 0, 0, 0, 0, time.UTC) // a Monday
	put := func(cid, campaign string, day, from, n int) {
		t.Helper()
		r := hllstore.NewRecord()
		for i := range n {
			r.Add(mix(uint64(from + i)))
		}
		k := hllstore.Key{ContentID: cid, Campaign: campaign, Kind: pixelpb.Kind_KIND_VIEW, Gran: hllstore.GranularityDay, Start: week.Add(time.Duration(day) * 24 * time.Hour).UnixMilli()}
		if err := hllstoretest.Put(ctx, store, []hllstoretest.Write{{Key: k, Record: &r}}); err != nil {
			t.Fatal(err)
		}
	}
	for day := range 7 {
		put("x", "", day, 100*day, 50)
		put("x", "fall", day, 100*day, 20)
		put("y", "fall", day+7, 100*day, 30) // the next week
	}
	put("y", "fall", 3, 0, 40)
	days := NewReader(store)
	days.Final = 0
	weeks := NewReader(store)
	check := func(phase string, sc Scope) {
		t.Helper()
		want, err := days.Summary(ctx, sc)
		if err != nil {
			t.Fatal(err)
		}
		got, err := weeks.Summary(ctx, sc)
		if err != nil {
			t.Fatal(err)
		}
		g, w := got.Get(hllstore.Human, pixelpb.Kind_KIND_VIEW), want.Get(hllstore.Human, pixelpb.Kind_KIND_VIEW)
		if g.Total != w.Total || g.Uniques != w.Uniques || w.Total == 0 {
			t.Fatalf("%s %+v: weeks %+v, days %+v", phase, sc, g, w)
		}
	}
	x := Scope{ContentID: "x", From: week, To: week.Add(14 * 24 * time.Hour)}
	fall := Scope{Campaign: "fall", From: week, To: week.Add(14 * 24 * time.Hour)}
	check("cold", x)
	check("campaign cold", fall)
	if n := pipetest.RedisKeys(t, rdb, prefix+":c:{*:w*"); len(n) != 3 {
		t.Fatalf("week rollups %v, want x's first week and y's two", n)
	}
	// A write into a day of a rolled-up week: the next read counts it.
	put("x", "fall", 4, 10_000, 70)
	put("x", "", 4, 10_000, 90)
	check("after a late write", x)
	check("campaign after a late write", fall)
	check("warm again", x)
}

// TestSharesCarryErrorBars: breakdown values and top entries carry the
// error bound of their unique count, as every other answer does, and the
// true number lies within it.
func TestSharesCarryErrorBars(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	r := &Reader{store: store, MaxRange: 400 * 24 * time.Hour}
	ctx := context.Background()
	d0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	dk := hllstore.DayKey{ContentID: "a", DayStart: d0.UnixMilli()}
	day := hllstore.NewDay()
	rec := day.Record(hllstore.RecordID{Kind: pixelpb.Kind_KIND_VIEW, Class: hllstore.Human, Hour: hllstore.DayRecord})
	b := day.Breakdown(pixelpb.Kind_KIND_VIEW)
	want := map[string]uint64{"DE": 30_000, "FR": 12}
	v := uint64(0)
	for country, n := range want {
		for range n {
			b.Add(hllstore.DimCountry, country, mix(v), 10)
			rec.Add(mix(v))
			v++
		}
	}
	day.Pos[0], day.BPos[0] = 1, 1
	if _, err := store.SaveDays(ctx, []hllstore.DayWrite{{Key: dk, Day: day, Details: true}}); err != nil {
		t.Fatal(err)
	}
	if err := store.RaiseTop(ctx, []hllstore.TopUpdate{{Key: dk.Key(hllstore.RecordID{Kind: pixelpb.Kind_KIND_VIEW, Hour: hllstore.DayRecord}), Total: rec.Total, Uniques: rec.Sketch.Estimate()}}); err != nil {
		t.Fatal(err)
	}
	check := func(what string, s Share, n uint64) {
		t.Helper()
		lo, hi := s.Uniques-min(s.Uniques, s.UniquesBound), s.Uniques+s.UniquesBound
		if n < lo || n > hi {
			t.Errorf("%s: %d visitors outside %d ± %d", what, n, s.Uniques, s.UniquesBound)
		}
		if n > 10_000 && s.UniquesBound == 0 {
			t.Errorf("%s: an estimate of %d visitors has no error bar", what, s.Uniques)
		}
	}
	sc := Scope{ContentID: "a", From: d0, To: d0.Add(24 * time.Hour)}
	shares, err := r.Breakdown(ctx, sc, hllstore.DimCountry, 10)
	if err != nil || len(shares) != 2 {
		t.Fatalf("breakdown: %v, %v", shares, err)
	}
	for _, s := range shares {
		check("breakdown "+s.Key, s, want[s.Key])
	}
	top, err := r.Top(ctx, d0, d0.Add(24*time.Hour), pixelpb.Kind_KIND_VIEW, "uniques", 5, nil)
	if err != nil || len(top) != 1 {
		t.Fatalf("top: %v, %v", top, err)
	}
	check("top a", top[0], v)
}

// TestVisitSums: a Summary of kind KIND_SESSION answers visits (Total),
// their visitors (Uniques) and their summed bounces, durations and pages
// (Sums) per class, added up over the days and hours of the range and the
// content ids of a campaign; a Series counts visits per bucket.
func TestVisitSums(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	ctx := context.Background()
	d0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	visits := pixelpb.Kind_KIND_SESSION
	// rec counts n visits of visitors from..from+n-1, each of pages pages
	// over ms milliseconds.
	rec := func(n, from int, pages, ms uint64) *hllstore.Record {
		r := hllstore.NewRecord()
		for i := range n {
			r.Add(mix(uint64(from + i)))
			r.AddSum(hllstore.SumPages, pages)
			r.AddSum(hllstore.SumDurationMs, ms)
			if pages == 1 {
				r.AddSum(hllstore.SumBounces, 1)
			}
		}
		return &r
	}
	key := func(cid, campaign string, class hllstore.Class, gran hllstore.Granularity, start time.Time) hllstore.Key {
		return hllstore.Key{ContentID: cid, Campaign: campaign, Kind: visits, Class: class, Gran: gran, Start: start.UnixMilli()}
	}
	day, hour := hllstore.GranularityDay, hllstore.GranularityHour
	writes := []hllstoretest.Write{
		// Day 0: "a" and "b" under the campaign (4 visitors of both), and
		// "a" has visits without it.
		{Key: key("a", "spring", hllstore.Human, day, d0), Record: rec(10, 0, 3, 60_000)},
		{Key: key("a", "", hllstore.Human, day, d0), Record: rec(25, 0, 1, 0)},
		{Key: key("b", "spring", hllstore.Human, day, d0), Record: rec(4, 5, 1, 0)},
		{Key: key("b", "spring", hllstore.Bot, day, d0), Record: rec(2, 500, 40, 9_000)},
		// Day 1: "b" again, with its 10:00 hour.
		{Key: key("b", "spring", hllstore.Human, day, d0.Add(24*time.Hour)), Record: rec(6, 100, 2, 30_000)},
		{Key: key("b", "spring", hllstore.Human, hour, d0.Add(34*time.Hour)), Record: rec(6, 100, 2, 30_000)},
	}
	if err := hllstoretest.Put(ctx, store, writes); err != nil {
		t.Fatal(err)
	}
	r := NewReader(store)
	sums := hllstoretest.VisitSums
	for _, c := range []struct {
		name           string
		sc             Scope
		class          hllstore.Class
		total, uniques uint64
		sums           map[string]uint64
	}{
		{"campaign, two days", Scope{Campaign: "spring", From: d0, To: d0.Add(48 * time.Hour)}, hllstore.Human,
			20, 16, sums(4, 30+4+12, 600_000+180_000)},
		{"campaign bots", Scope{Campaign: "spring", From: d0, To: d0.Add(48 * time.Hour)}, hllstore.Bot,
			2, 2, sums(0, 80, 18_000)},
		{"campaign, day 0 and an hour of day 1", Scope{Campaign: "spring", From: d0, To: d0.Add(35 * time.Hour)}, hllstore.Human,
			20, 16, sums(4, 30+4+12, 600_000+180_000)},
		{"campaign, day 0 and the hour before", Scope{Campaign: "spring", From: d0, To: d0.Add(34 * time.Hour)}, hllstore.Human,
			14, 10, sums(4, 30+4, 600_000)},
		{"content id", Scope{ContentID: "a", From: d0, To: d0.Add(48 * time.Hour)}, hllstore.Human,
			25, 25, sums(25, 25, 0)},
		{"a campaign's content id", Scope{Campaign: "spring", ContentID: "b", From: d0, To: d0.Add(48 * time.Hour)}, hllstore.Human,
			10, 10, sums(4, 4+12, 180_000)},
	} {
		c.sc.Kinds = []pixelpb.Kind{visits}
		sum, err := r.Summary(ctx, c.sc)
		if err != nil {
			t.Fatal(err)
		}
		g := sum.Get(c.class, visits)
		if g.Total != c.total || g.Uniques != c.uniques || !maps.Equal(g.Sums, c.sums) {
			t.Errorf("%s, %v: visits %d visitors %d sums %v; want %d %d %v", c.name, c.class, g.Total, g.Uniques, g.Sums, c.total, c.uniques, c.sums)
		}
	}
	// Every kind, visits among them (Kinds): the same visits, and no event
	// kind holds sums.
	sum, err := r.Summary(ctx, Scope{Campaign: "spring", From: d0, To: d0.Add(48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if g := sum.Get(hllstore.Bot, visits); g.Total != 2 || !maps.Equal(g.Sums, sums(0, 80, 18_000)) {
		t.Errorf("bot visits of a summary of every kind: %+v", g)
	}
	if g := sum.Get(hllstore.Human, pixelpb.Kind_KIND_VIEW); g.Total != 0 || g.Sums != nil {
		t.Errorf("views %+v, want none", g)
	}
	// A day series: visits per day.
	pts, err := r.Series(ctx, SeriesQuery{Scope: Scope{Campaign: "spring", From: d0, To: d0.Add(48 * time.Hour)},
		Gran: pixelpb.Granularity_GRANULARITY_DAY, Class: hllstore.Human, UniquesKind: visits})
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 || pts[0].Totals[visits] != 14 || pts[1].Totals[visits] != 6 || pts[0].Uniques != 10 || pts[1].Uniques != 6 {
		t.Errorf("series %+v, want 14 and 6 visits", pts)
	}
}
