//go:build integration

package aggregator

import (
	"context"
	"maps"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/hllstore/hllstoretest"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// visit is a visit of content id "c" closed by the record at source
// partition 0, offset o, the index-th it closed: started at startMs,
// pages page views over ms milliseconds.
func visit(o int64, index uint32, startMs int64, visitor uint64, pages uint32, ms int64) *pixelpb.Event {
	return &pixelpb.Event{
		ContentId: "c", Kind: pixelpb.Kind_KIND_SESSION, VisitorKey: visitor,
		Origin:  &pixelpb.Origin{ReceivedAtMs: startMs},
		Source:  &pixelpb.SourcePosition{Partition: 0, Offset: o, Index: index},
		Session: &pixelpb.Session{StartMs: startMs, EndMs: startMs + ms, Pages: pages, Bounce: pages == 1},
	}
}

// TestVisitsCountOnce: visits count once per session position (offset,
// index), apart from the hits' positions: the visits one record closed
// (indexes 0, 1, 2 at one offset) count each once, a visit sharing its
// offset with the hit that closed it counts and so does the hit (whichever
// comes first), replays count nothing, also after a restart that reloads
// the day from Redis; a bot's visit counts in class Bot, a campaign's also
// under the campaign, each in the hour it started; the sums are exact.
func TestVisitsCountOnce(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	ctx := context.Background()
	hit := viewEvent(hllstore.DayKey{ContentID: "c"}, hour0+50*60_000, 0, 10)
	v0 := visit(10, 0, hour0+5*60_000, 1, 1, 0)                // a bounce, closed by the hit
	v1 := visit(10, 1, hour0+8*60_000, 2, 3, 600_000)          // also closed by the hit
	v2 := visit(10, 2, hour0-3600_000+60_000, 3, 2, 1_200_000) // the hour before
	v2.Bot, v2.CampaignId = true, "spring"
	v3 := visit(11, 0, hour0+20*60_000, 1, 4, 300_000) // closed by a clock tick
	v3.CampaignId = "spring"

	a := newTestAggregator(t, store)
	// The visits before the hit that closed them, and after; then a replay.
	if err := a.apply(ctx, []*pixelpb.Event{v0, hit, v1}); err != nil {
		t.Fatal(err)
	}
	if err := a.apply(ctx, []*pixelpb.Event{v0, hit, v1}); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(a.m.visitsSkipped); n != 2 {
		t.Errorf("visits skipped in the replay: %v, want 2", n)
	}
	if err := a.flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	// A restart: the new owner replays from before and goes on.
	a = newTestAggregator(t, store)
	if err := a.apply(ctx, []*pixelpb.Event{hit, v0, v1, v2, v3, v3, v2}); err != nil {
		t.Fatal(err)
	}
	if err := a.flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	if ap, sk := testutil.ToFloat64(a.m.visitsApplied), testutil.ToFloat64(a.m.visitsSkipped); ap != 2 || sk != 4 {
		t.Errorf("after the restart visits applied %v skipped %v, want 2 (v2, v3) and 4", ap, sk)
	}
	if ap, sk := testutil.ToFloat64(a.m.applied), testutil.ToFloat64(a.m.skipped); ap != 2 || sk != 5 {
		t.Errorf("after the restart events applied %v skipped %v, want 2 and 5 (the hit too)", ap, sk)
	}

	day := hllstore.DayStart(hour0)
	key := func(kind pixelpb.Kind, campaign string, class hllstore.Class, gran hllstore.Granularity, start int64) hllstore.Key {
		return hllstore.Key{ContentID: "c", Campaign: campaign, Kind: kind, Class: class, Gran: gran, Start: start}
	}
	visits, dayGran, hourGran := pixelpb.Kind_KIND_SESSION, hllstore.GranularityDay, hllstore.GranularityHour
	sums := hllstoretest.VisitSums
	for _, c := range []struct {
		key            hllstore.Key
		total, uniques uint64
		sums           map[string]uint64
	}{
		{key(visits, "", hllstore.Human, dayGran, day), 3, 2, sums(1, 8, 900_000)},
		{key(visits, "", hllstore.Human, hourGran, hour0), 3, 2, sums(1, 8, 900_000)},
		{key(visits, "spring", hllstore.Human, dayGran, day), 1, 1, sums(0, 4, 300_000)},
		{key(visits, "spring", hllstore.Human, hourGran, hour0), 1, 1, sums(0, 4, 300_000)},
		{key(visits, "", hllstore.Bot, dayGran, day), 1, 1, sums(0, 2, 1_200_000)},
		{key(visits, "", hllstore.Bot, hourGran, hour0-3600_000), 1, 1, sums(0, 2, 1_200_000)},
		{key(visits, "spring", hllstore.Bot, dayGran, day), 1, 1, sums(0, 2, 1_200_000)},
		{key(visits, "", hllstore.Bot, hourGran, hour0), 0, 0, nil},
		{key(pixelpb.Kind_KIND_VIEW, "", hllstore.Human, dayGran, day), 1, 1, nil},
	} {
		got, err := store.Load(ctx, []hllstore.Key{c.key})
		if err != nil {
			t.Fatal(err)
		}
		g := got[0]
		if g.Total != c.total || g.Sketch.Estimate() != c.uniques || !maps.Equal(g.Sums, c.sums) || g.Reasons != nil {
			t.Errorf("%+v: total %d uniques %d sums %v reasons %v; want %d %d %v", c.key, g.Total, g.Sketch.Estimate(), g.Sums, g.Reasons, c.total, c.uniques, c.sums)
		}
	}
	// The day keeps the hits' and the visits' positions apart.
	days, err := store.LoadDays(ctx, []hllstore.DayKey{{ContentID: "c", DayStart: day}})
	if err != nil {
		t.Fatal(err)
	}
	if d := days[0]; len(d.Pos) != 1 || d.Pos[0] != 10 || len(d.SPos) != 1 || d.SPos[0] != (hllstore.SessionPos{Offset: 11}) {
		t.Errorf("positions %v, session positions %v; want 0:10 and 0:11.0", d.Pos, d.SPos)
	}
	// Visits are neither ranked nor broken down; the hit is.
	if top, err := store.Top(ctx, visits, day, hllstore.TopByTotal, 10); err != nil || len(top) != 0 {
		t.Errorf("visits ranked: %v %v", top, err)
	}
	if top, err := store.Top(ctx, pixelpb.Kind_KIND_VIEW, day, hllstore.TopByTotal, 10); err != nil || len(top) != 1 || top[0].Score != 1 {
		t.Errorf("views ranked: %v %v", top, err)
	}
	bd, err := store.LoadBreakdowns(ctx, []hllstore.BreakdownKey{{ContentID: "c", Kind: visits, DayStart: day}})
	if err != nil || len(bd[0].Dims) != 0 {
		t.Errorf("visits broken down: %v %v", bd, err)
	}
}
