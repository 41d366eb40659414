//go:build integration

package aggregator

import (
	"context"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/lease"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// The rollup job builds the week rollups of every content id the
// aggregator wrote in a week once the week is final, only one instance at
// a time, and readers then read them as they are; an event accepted for a
// day of the week afterwards (an aggregator with another clock or late
// horizon) is not hidden by the rollup.
func TestRollupJob(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	ctx := context.Background()
	week := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC) // a Monday
	rng := rand.New(rand.NewPCG(7, 7))
	events := withVisits(rng, genEvents(rng, 600))
	for _, ev := range events {
		// Spread the events over the week and the first day of the next.
		ev.Origin.ReceivedAtMs = week.UnixMilli() + rng.Int64N(8*hllstore.DayMs)
	}
	agg := newTestAggregator(t, store)
	if err := agg.apply(ctx, events); err != nil {
		t.Fatal(err)
	}
	if err := agg.flush(ctx, true); err != nil {
		t.Fatal(err)
	}

	cfg := DefaultConfig()
	now := week.Add(7*24*time.Hour + cfg.LateHorizon + cfg.RollupMargin + time.Minute)
	reg := prometheus.NewRegistry()
	leases := lease.New(rdb, prefix)
	job, err := NewRollups(cfg, nil, reg, store, leases)
	if err != nil {
		t.Fatal(err)
	}
	job.now = func() time.Time { return now }
	// Another instance holds the lease: this run does nothing.
	if ok, err := leases.Acquire(ctx, rollupLease, "other", time.Minute); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if err := job.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n := pipetest.RedisKeys(t, rdb, prefix+":c:{*:w*"); len(n) != 0 || testutil.ToFloat64(job.m.runHeld) != 1 {
		t.Fatalf("with the lease held elsewhere the job built %v", n)
	}
	if err := leases.Release(ctx, rollupLease, "other"); err != nil {
		t.Fatal(err)
	}
	// A partition's watermark before the deadline holds the week back.
	deadline := week.Add(7*24*time.Hour + cfg.LateHorizon).UnixMilli()
	if err := store.WriteWatermarks(ctx, map[int32]hllstore.Watermark{0: {CompleteUntilMs: deadline - 1, WrittenAtMs: now.UnixMilli()}, 1: {CompleteUntilMs: now.UnixMilli(), WrittenAtMs: now.UnixMilli()}}); err != nil {
		t.Fatal(err)
	}
	if err := job.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n := pipetest.RedisKeys(t, rdb, prefix+":c:{*:w*"); len(n) != 0 || testutil.ToFloat64(job.m.waiting) != 1 {
		t.Fatalf("with a watermark behind the job built %v", n)
	}
	if err := store.WriteWatermarks(ctx, map[int32]hllstore.Watermark{0: {CompleteUntilMs: now.UnixMilli(), WrittenAtMs: now.UnixMilli()}}); err != nil {
		t.Fatal(err)
	}
	if err := job.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(job.m.built); got != 3 {
		t.Fatalf("%v rollups built, want 3 (c0, c1, c2)", got)
	}
	if done, err := store.WeekRolled(ctx, week.UnixMilli()); err != nil || !done {
		t.Fatalf("the week is not marked rolled up: %v %v", done, err)
	}
	if got := testutil.ToFloat64(job.m.waiting); got != 0 {
		t.Fatalf("%v weeks still waiting", got)
	}
	valid, err := store.WeeksValid(ctx, []string{"c0", "c1", "c2"}, week.UnixMilli())
	if err != nil || !valid[0] || !valid[1] || !valid[2] {
		t.Fatalf("rollups after the job: valid %v %v", valid, err)
	}
	// A second run finds the week done.
	if err := job.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(job.m.built); got != 3 {
		t.Fatalf("a second run built again: %v", got)
	}

	// What readers see, per content id, against the days alone.
	check := func(phase string) {
		t.Helper()
		days := counts.NewReader(store)
		days.Final = 0
		weeks := counts.NewReader(store)
		weeks.Now = func() time.Time { return now }
		for _, cid := range []string{"c0", "c1", "c2"} {
			sc := counts.Scope{ContentID: cid, From: week, To: week.Add(8 * 24 * time.Hour)}
			want, err := days.Summary(ctx, sc)
			if err != nil {
				t.Fatal(err)
			}
			got, err := weeks.Summary(ctx, sc)
			if err != nil {
				t.Fatal(err)
			}
			for _, cl := range counts.Classes {
				for _, k := range counts.Kinds {
					if g, w := got.Get(cl, k), want.Get(cl, k); g.Total != w.Total || g.Uniques != w.Uniques || g.Orders != w.Orders || !maps.Equal(g.Sums, w.Sums) {
						t.Fatalf("%s: %s %v %v: weeks %+v, days %+v", phase, cid, cl, k, g, w)
					}
				}
			}
		}
	}
	check("rolled up by the job")
	// Visits are among what the rollups hold.
	if v, err := store.Load(ctx, []hllstore.Key{{ContentID: "c0", Kind: pixelpb.Kind_KIND_SESSION, Gran: hllstore.GranularityWeek, Start: week.UnixMilli()}}); err != nil || v[0].Total == 0 || v[0].Sums[hllstore.SumPages] < v[0].Total {
		t.Fatalf("visits of c0's week rollup: %+v %v", v, err)
	}
	// An aggregator whose late horizon is longer (newTestAggregator: 100
	// years) accepts an event of the rolled-up week.
	late := newTestAggregator(t, store)
	ev := &pixelpb.Event{
		ContentId: "c1", Kind: pixelpb.Kind_KIND_VIEW,
		Origin:     &pixelpb.Origin{ReceivedAtMs: week.Add(3*24*time.Hour + time.Hour).UnixMilli()},
		Source:     &pixelpb.SourcePosition{Partition: 9, Offset: 1},
		VisitorKey: 0xfeedface,
	}
	if err := late.apply(ctx, []*pixelpb.Event{ev}); err != nil {
		t.Fatal(err)
	}
	if err := late.flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	if valid, err := store.WeeksValid(ctx, []string{"c1"}, week.UnixMilli()); err != nil || valid[0] {
		t.Fatalf("the rollup of c1 is still valid after a write into its week: %v %v", valid, err)
	}
	check("after a write into the rolled-up week")
}
