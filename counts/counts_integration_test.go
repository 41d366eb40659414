//go:build integration

package counts

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
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
	var writes []hllstore.Write
	day := map[int64]*hllstore.Record{}
	visitor := uint64(0)
	for h := range 48 {
		start := d0.Add(time.Duration(h) * time.Hour).UnixMilli()
		hr := hllstore.NewRecord()
		for range 10 { // 10 events, 5 distinct visitors per hour, all new
			hr.Total++
			hr.Sketch.InsertHash(mix(visitor / 2))
			visitor++
		}
		hr.Pos[0] = int64(h)
		writes = append(writes, hllstore.Write{Key: hllstore.Key{ContentID: "a", Kind: pixelpb.Kind_KIND_VIEW, Gran: pixelpb.Granularity_GRANULARITY_HOUR, Start: start}, Record: &hr})
		ds := hllstore.DayStart(start)
		if day[ds] == nil {
			r := hllstore.NewRecord()
			day[ds] = &r
		}
		day[ds].Total += hr.Total
		if err := day[ds].Sketch.Merge(hr.Sketch); err != nil {
			t.Fatal(err)
		}
		day[ds].Pos[0] = int64(h)
	}
	for ds, r := range day {
		writes = append(writes, hllstore.Write{Key: hllstore.Key{ContentID: "a", Kind: pixelpb.Kind_KIND_VIEW, Gran: pixelpb.Granularity_GRANULARITY_DAY, Start: ds}, Record: r})
	}
	// Campaign "spring": 7 clicks on a, 4 on b, on day 0.
	for cid, n := range map[string]int{"a": 7, "b": 4} {
		r := hllstore.NewRecord()
		for i := range n {
			r.Total++
			r.Sketch.InsertHash(mix(uint64(1000 + i)))
		}
		r.Pos[0] = 1
		writes = append(writes, hllstore.Write{Key: hllstore.Key{ContentID: cid, Campaign: "spring", Kind: pixelpb.Kind_KIND_CLICK, Gran: pixelpb.Granularity_GRANULARITY_DAY, Start: d0.UnixMilli()}, Record: &r})
	}
	if err := store.Put(ctx, writes); err != nil {
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
