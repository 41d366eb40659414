//go:build integration

package hllstore

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// visitRecord adds to r the visits of visitors, each of pages pages lasting
// ms milliseconds, a bounce when pages is 1 (as the aggregator counts them).
func visitRecord(r *Record, pages, ms uint64, visitors ...uint64) {
	for _, v := range visitors {
		r.Add(v)
		r.AddSum(SumPages, pages)
		r.AddSum(SumDurationMs, ms)
		if pages == 1 {
			r.AddSum(SumBounces, 1)
		}
	}
}

// A day's visit records keep their named sums, and the day its session
// positions, through a write and a load (Load for readers, LoadDays for the
// writer), and a second write over the loaded day adds to them.
func TestVisitSumsAndSessionPositions(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, Config{Prefix: prefix})
	ctx := context.Background()
	day := DayStart(time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC).UnixMilli())
	dk := DayKey{ContentID: "v-1", DayStart: day}
	visits := pixelpb.Kind_KIND_SESSION
	human := RecordID{Kind: visits, Hour: DayRecord}
	hour := RecordID{Kind: visits, Hour: 9}
	bot := RecordID{Kind: visits, Class: Bot, Hour: DayRecord}
	campaign := RecordID{Kind: visits, Campaign: "spring", Hour: DayRecord}
	view := RecordID{Kind: pixelpb.Kind_KIND_VIEW, Hour: DayRecord}

	d := NewDay()
	for _, id := range []RecordID{human, hour, campaign} {
		visitRecord(d.Record(id), 1, 0, 1, 2)       // two bounces
		visitRecord(d.Record(id), 4, 90_000, 2, 3)  // two visits of 4 pages
		visitRecord(d.Record(id), 2, 1<<35, 1)      // a long one
		visitRecord(d.Record(id), 3, 60_000, 4)     //
		visitRecord(d.Record(id), 1, 0, 5)          // a third bounce
		visitRecord(d.Record(id), 2, 30_000, 6)     //
		visitRecord(d.Record(id), 5, 120_000, 7, 8) //
	}
	visitRecord(d.Record(bot), 20, 40_000, 99)
	d.Record(view).Add(1)
	d.Pos[0] = 10
	d.SPos[0] = SessionPos{Offset: 10, Index: 1}
	d.SPos[2] = SessionPos{Offset: 4, Index: 0}
	want := map[string]uint64{SumBounces: 3, SumPages: 1 + 1 + 4 + 4 + 2 + 3 + 1 + 2 + 5 + 5, SumDurationMs: 2*90_000 + 1<<35 + 60_000 + 30_000 + 2*120_000}
	if w, err := s.SaveDays(ctx, []DayWrite{{Key: dk, Day: d}}); err != nil || !w[0] {
		t.Fatalf("save: %v %v", w, err)
	}

	// What is stored: the sums as "name=n" lines, the session positions as
	// the guard's sixth part.
	dh, _, _ := s.DayRedisKeys(dk)
	raw, err := rdb.HMGet(ctx, dh, "v-1|s|7|0|", "v-1|g", "v-1|s|2|0|").Result()
	if err != nil {
		t.Fatal(err)
	}
	if raw[0] != encodeCounts(want) || raw[2] != nil {
		t.Fatalf("stored sums %q, of the view record %q", raw[0], raw[2])
	}
	if g, _ := raw[1].(string); !strings.HasSuffix(g, "/0:10//200/0:10.1,2:4.0") || strings.Count(g, "/") != 5 {
		t.Fatalf("stored guard %q", g)
	}

	keys := []Key{dk.Key(human), dk.Key(hour), dk.Key(campaign), dk.Key(bot), dk.Key(view)}
	check := func(phase string, want map[string]uint64, total uint64) {
		t.Helper()
		got, err := s.Load(ctx, keys)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if !maps.Equal(got[i].Sums, want) || got[i].Total != total || got[i].Reasons != nil {
				t.Fatalf("%s: %+v: total %d sums %v, want %d %v", phase, keys[i], got[i].Total, got[i].Sums, total, want)
			}
		}
		if b := got[3]; b.Total != 1 || !maps.Equal(b.Sums, map[string]uint64{SumPages: 20, SumDurationMs: 40_000}) {
			t.Fatalf("%s: bot visits %d sums %v", phase, b.Total, b.Sums)
		}
		if v := got[4]; v.Total != 1 || v.Sums != nil {
			t.Fatalf("%s: view record %d sums %v, want 1 and none", phase, v.Total, v.Sums)
		}
	}
	check("first write", want, 10)

	// The writer's reload, and a second write over it.
	days, err := s.LoadDays(ctx, []DayKey{dk})
	if err != nil {
		t.Fatal(err)
	}
	l := days[0]
	if l.Version != 1 || len(l.Pos) != 1 || l.Pos[0] != 10 || !maps.Equal(l.SPos, d.SPos) {
		t.Fatalf("loaded day version %d pos %v spos %v", l.Version, l.Pos, l.SPos)
	}
	if !l.SPos.Covers(0, 10, 1) || l.SPos.Covers(0, 10, 2) || l.Pos.Covers(0, 11) {
		t.Fatal("the loaded positions cover what they should not, or miss what they should")
	}
	for _, id := range []RecordID{human, hour, campaign} {
		if r := l.Records[id]; r == nil || !maps.Equal(r.Sums, want) || r.Dirty() {
			t.Fatalf("loaded %+v: %+v", id, r)
		}
		visitRecord(l.Records[id], 1, 0, 42)
	}
	l.SPos[0] = SessionPos{Offset: 11, Index: 0}
	if w, err := s.SaveDays(ctx, []DayWrite{{Key: dk, Day: l}}); err != nil || !w[0] {
		t.Fatalf("second save: %v %v", w, err)
	}
	want2 := maps.Clone(want)
	want2[SumBounces]++
	want2[SumPages]++
	check("second write", want2, 11)
	days, err = s.LoadDays(ctx, []DayKey{dk})
	if err != nil || days[0].Version != 2 || days[0].SPos[0] != (SessionPos{11, 0}) || days[0].SPos[2] != (SessionPos{4, 0}) {
		t.Fatalf("reloaded day %+v %v", days[0], err)
	}
}

// A day stored with a five-part guard (written before visits were counted)
// loads, with no session positions, and takes a write with them.
func TestFivePartGuardLoads(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, Config{Prefix: prefix})
	ctx := context.Background()
	day := DayStart(time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC).UnixMilli())
	dk := DayKey{ContentID: "old-1", DayStart: day}
	dh, _, _ := s.DayRedisKeys(dk)
	view := RecordID{Kind: pixelpb.Kind_KIND_VIEW, Hour: DayRecord}
	if err := rdb.HSet(ctx, dh, "old-1|g", "oldtok.1/3/0:5,1:8//0", "old-1|ids", "2|0|", "old-1|c|2|0|", "4:").Err(); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(ctx, []Key{dk.Key(view)})
	if err != nil || got[0].Total != 4 || got[0].Version != 3 || got[0].Sums != nil {
		t.Fatalf("load: %+v %v", got, err)
	}
	days, err := s.LoadDays(ctx, []DayKey{dk})
	if err != nil {
		t.Fatal(err)
	}
	d := days[0]
	if d.Version != 3 || d.Pos[0] != 5 || d.Pos[1] != 8 || d.SPos == nil || len(d.SPos) != 0 || d.Records[view].Total != 4 {
		t.Fatalf("loaded %+v", d)
	}
	lost, err := s.Lost(ctx, []DayKey{dk}, days)
	if err != nil || lost[0] {
		t.Fatalf("lost %v %v", lost, err)
	}
	visitRecord(d.Record(RecordID{Kind: pixelpb.Kind_KIND_SESSION, Hour: DayRecord}), 1, 0, 7)
	d.SPos[1] = SessionPos{Offset: 8, Index: 3}
	if w, err := s.SaveDays(ctx, []DayWrite{{Key: dk, Day: d}}); err != nil || !w[0] {
		t.Fatalf("a write over a five-part guard: %v %v", w, err)
	}
	days, err = s.LoadDays(ctx, []DayKey{dk})
	if err != nil || days[0].Version != 4 || days[0].SPos[1] != (SessionPos{8, 3}) || days[0].Pos[0] != 5 || days[0].Records[view].Total != 4 {
		t.Fatalf("reloaded %+v %v", days[0], err)
	}
}

// A week rollup sums its days' named sums: built (BuildWeeks), stored in
// the rollup's "s|<rid>" field, and read back (Load of a week).
func TestWeekRollupSums(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, Config{Prefix: prefix})
	ctx := context.Background()
	week := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC).UnixMilli() // a Monday
	visits := RecordID{Kind: pixelpb.Kind_KIND_SESSION, Hour: DayRecord}
	spring := RecordID{Kind: pixelpb.Kind_KIND_SESSION, Campaign: "spring", Hour: DayRecord}
	var writes []DayWrite
	want := map[string]uint64{}
	for day := range 7 {
		if day == 3 {
			continue // a day with no hash
		}
		d := NewDay()
		pages := uint64(day + 1)
		for _, id := range []RecordID{visits, spring} {
			visitRecord(d.Record(id), pages, 1000*pages, uint64(day)*0x9e3779b97f4a7c15+1, 0xabc) // 0xabc every day
		}
		if day != 5 {
			d.Record(RecordID{Kind: pixelpb.Kind_KIND_VIEW, Hour: DayRecord}).Add(1) // a record without sums
		}
		want[SumPages] += 2 * pages
		want[SumDurationMs] += 2 * 1000 * pages
		if pages == 1 {
			want[SumBounces] += 2
		}
		writes = append(writes, DayWrite{Key: DayKey{ContentID: "w-1", DayStart: week + int64(day)*DayMs}, Day: d})
	}
	if w, err := s.SaveDays(ctx, writes); err != nil || len(w) != 6 {
		t.Fatalf("save: %v %v", w, err)
	}
	built, err := s.BuildWeeks(ctx, "w-1", []int64{week})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []RecordID{visits, spring} {
		if r := built[0][id]; r == nil || !maps.Equal(r.Sums, want) || r.Total != 12 || r.Sketch.Estimate() != 7 {
			t.Fatalf("built %+v: %+v, want 12 visits of 7 visitors, sums %v", id, r, want)
		}
	}
	if v := built[0][RecordID{Kind: pixelpb.Kind_KIND_VIEW, Hour: DayRecord}]; v == nil || v.Total != 5 || v.Sums != nil {
		t.Fatalf("built views %+v", v)
	}
	stored, err := rdb.HGet(ctx, s.weekKey("w-1", week), "s|7|0|spring").Result()
	if err != nil || stored != encodeCounts(want) {
		t.Fatalf("stored week sums %q %v, want %q", stored, err, encodeCounts(want))
	}
	got, err := s.Load(ctx, []Key{{ContentID: "w-1", Kind: pixelpb.Kind_KIND_SESSION, Gran: GranularityWeek, Start: week}})
	if err != nil || !maps.Equal(got[0].Sums, want) || got[0].Total != 12 {
		t.Fatalf("read week: %+v %v", got, err)
	}
}
