//go:build integration

package hllstore

import (
	"context"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

func record(total uint64, visitors []uint64, pos Positions) *Record {
	r := NewRecord()
	for _, v := range visitors {
		r.Sketch.InsertHash(v)
	}
	r.Total, r.Pos = total, pos
	return &r
}

func TestSaveLoadAndPositionGuard(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, Config{Prefix: prefix, DayRetention: time.Hour, HourRetention: time.Minute})
	ctx := context.Background()
	day := DayStart(time.Date(2026, 11, 28, 15, 0, 0, 0, time.UTC).UnixMilli())
	k := Key{ContentID: "a-1", Kind: pixelpb.Kind_KIND_VIEW, Gran: pixelpb.Granularity_GRANULARITY_DAY, Start: day}

	recs, err := s.Load(ctx, []Key{k})
	if err != nil || recs[0].Total != 0 || recs[0].Sketch.Estimate() != 0 || len(recs[0].Pos) != 0 {
		t.Fatalf("empty load: %+v %v", recs, err)
	}

	v1 := record(3, []uint64{0x1111111111111111, 0x2222222222222222, 0x3333333333333333}, Positions{0: 10, 1: 5})
	retry := *v1 // what a client retry of the same write would send
	if w, err := s.Save(ctx, []Write{{k, v1}}); err != nil || !w[0] || v1.Version != 1 {
		t.Fatalf("first save: %v %v, version %d", w, err, v1.Version)
	}
	// The same write again (a go-redis retry after a lost reply) is refused:
	// the version it was made over is gone.
	if w, err := s.Save(ctx, []Write{{k, &retry}}); err != nil || w[0] {
		t.Fatalf("retried save was accepted: %v %v", w, err)
	}
	// A writer that loaded the record earlier (a stale owner) is refused.
	if w, err := s.Save(ctx, []Write{{k, record(99, nil, Positions{0: 50, 1: 50})}}); err != nil || w[0] {
		t.Fatalf("stale save was accepted: %v %v", w, err)
	}
	// So is a write at the right version that would move a position back.
	back := record(99, nil, Positions{0: 9, 1: 50})
	back.Version = 1
	if w, _ := s.Save(ctx, []Write{{k, back}}); w[0] {
		t.Fatal("save moving a position backwards was accepted")
	}
	missing := record(99, nil, Positions{0: 50})
	missing.Version = 1
	if w, _ := s.Save(ctx, []Write{{k, missing}}); w[0] {
		t.Fatal("save missing a stored partition was accepted")
	}
	recs, err = s.Load(ctx, []Key{k})
	if err != nil {
		t.Fatal(err)
	}
	got := recs[0]
	if got.Total != 3 || got.Sketch.Estimate() != 3 || got.Pos[0] != 10 || got.Pos[1] != 5 || len(got.Pos) != 2 || got.Version != 1 {
		t.Fatalf("loaded %+v, estimate %d", got, got.Sketch.Estimate())
	}
	if !got.Pos.Covers(0, 10) || got.Pos.Covers(0, 11) || got.Pos.Covers(7, 0) {
		t.Fatal("Covers disagrees with the stored positions")
	}
	if ttl, err := rdb.TTL(ctx, s.RedisKey(k)).Result(); err != nil || ttl <= time.Minute || ttl > time.Hour {
		t.Fatalf("day ttl %v %v, want the day retention", ttl, err)
	}
	hk := k
	hk.Gran, hk.Start = pixelpb.Granularity_GRANULARITY_HOUR, day+15*HourMs
	if _, err := s.Save(ctx, []Write{{hk, record(1, []uint64{1}, Positions{0: 1})}}); err != nil {
		t.Fatal(err)
	}
	if ttl, err := rdb.TTL(ctx, s.RedisKey(hk)).Result(); err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("hour ttl %v %v, want the hour retention", ttl, err)
	}
}

func TestReasonsOrdersAndCampaignIndex(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, Config{Prefix: prefix})
	ctx := context.Background()
	day := DayStart(time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC).UnixMilli())
	k := Key{ContentID: "shop", Campaign: "spring", Kind: pixelpb.Kind_KIND_CONVERSION, Class: Bot, Gran: pixelpb.Granularity_GRANULARITY_DAY, Start: day}

	r := record(3, []uint64{7}, Positions{2: 30})
	r.AddReason("headless")
	r.AddReason("headless")
	r.AddReason("datacenter")
	if !r.AddOrder("o-1", "EUR", 12_500_000) || r.AddOrder("o-1", "EUR", 12_500_000) || !r.AddOrder("o-2", "USD", 1_000_000) {
		t.Fatal("AddOrder does not count each order once")
	}
	if _, err := s.Save(ctx, []Write{{k, r}}); err != nil {
		t.Fatal(err)
	}
	// A later state adds an order; earlier orders stay.
	r.Pos[2] = 31
	r.AddOrder("o-3", "EUR", 500_000)
	if w, err := s.Save(ctx, []Write{{k, r}}); err != nil || !w[0] {
		t.Fatalf("second save: %v %v", w, err)
	}
	recs, err := s.Load(ctx, []Key{k})
	if err != nil {
		t.Fatal(err)
	}
	got := recs[0]
	if got.Reasons["headless"] != 2 || got.Reasons["datacenter"] != 1 {
		t.Fatalf("reasons %v", got.Reasons)
	}
	if len(got.Orders) != 3 || got.Value["EUR"] != 13_000_000 || got.Value["USD"] != 1_000_000 {
		t.Fatalf("orders %v value %v", got.Orders, got.Value)
	}
	// The reloaded record knows its orders: a replayed order is not new.
	if got.AddOrder("o-2", "USD", 1_000_000) {
		t.Fatal("an order loaded from Redis counted again")
	}
	ids, err := s.CampaignContents(ctx, "spring", day)
	if err != nil || len(ids) != 1 || ids[0] != "shop" {
		t.Fatalf("campaign index %v %v", ids, err)
	}
}

func TestBreakdownBoundTopAndWatermark(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, Config{Prefix: prefix})
	ctx := context.Background()
	day := DayStart(time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC).UnixMilli())
	k := BreakdownKey{ContentID: "a", Kind: pixelpb.Kind_KIND_VIEW, DayStart: day}

	b := NewBreakdown()
	for i, c := range []string{"DE", "FR", "DE", "", "US", "NL", "DE"} {
		b.Add(DimCountry, c, uint64(i+1)*0x9e3779b97f4a7c15, 3) // at most 3 values, then "other"
		b.Add(DimDevice, "mobile", uint64(i+1)*0x9e3779b97f4a7c15, 3)
	}
	b.Pos[0] = 7
	if w, err := s.SaveBreakdowns(ctx, []BreakdownWrite{{k, &b}}); err != nil || !w[0] {
		t.Fatalf("save: %v %v", w, err)
	}
	got, err := s.LoadBreakdowns(ctx, []BreakdownKey{k})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"DE": 3, "FR": 1, Unknown: 1, Other: 2}
	countries := got[0].Dims[DimCountry]
	if len(countries) != len(want) || got[0].Version != 1 {
		t.Fatalf("values %v version %d", countries, got[0].Version)
	}
	for v, n := range want {
		if sc := countries[v]; sc == nil || sc.Total != n || sc.Sketch.Estimate() != n {
			t.Fatalf("%s: %+v, want %d", v, sc, n)
		}
	}
	if sc := got[0].Dims[DimDevice]["mobile"]; sc == nil || sc.Total != 7 || len(got[0].Dims[DimDevice]) != 1 {
		t.Fatalf("devices %v", got[0].Dims[DimDevice])
	}
	// A stale copy of the breakdown is refused.
	stale := NewBreakdown()
	stale.Add(DimCountry, "SE", 1, 3)
	stale.Pos[0] = 9
	if w, _ := s.SaveBreakdowns(ctx, []BreakdownWrite{{k, &stale}}); w[0] {
		t.Fatal("stale breakdown accepted")
	}

	// Top index: scores only move up.
	rk := func(cid string) Key {
		return Key{ContentID: cid, Kind: pixelpb.Kind_KIND_VIEW, Gran: pixelpb.Granularity_GRANULARITY_DAY, Start: day}
	}
	v := func(i uint64) uint64 { return i * 0x9e3779b97f4a7c15 }
	big, small := record(50, []uint64{v(1), v(2)}, Positions{0: 1}), record(5, []uint64{v(1), v(2), v(3)}, Positions{0: 1})
	if err := s.RaiseTop(ctx, []TopUpdate{{rk("big"), big.Total, big.Sketch.Estimate()}, {rk("small"), small.Total, small.Sketch.Estimate()}}); err != nil {
		t.Fatal(err)
	}
	if err := s.RaiseTop(ctx, []TopUpdate{{rk("big"), 1, 0}}); err != nil { // a stale owner's lower score
		t.Fatal(err)
	}
	top, err := s.Top(ctx, pixelpb.Kind_KIND_VIEW, day, TopByTotal, 10)
	if err != nil || len(top) != 2 || top[0] != (TopEntry{"big", 50}) || top[1] != (TopEntry{"small", 5}) {
		t.Fatalf("top by total %v %v", top, err)
	}
	top, _ = s.Top(ctx, pixelpb.Kind_KIND_VIEW, day, TopByUniques, 1)
	if len(top) != 1 || top[0] != (TopEntry{"small", 3}) {
		t.Fatalf("top by uniques %v", top)
	}

	if err := s.WriteWatermarks(ctx, map[int32]Watermark{0: {CompleteUntilMs: 100, WrittenAtMs: 200}, 3: {CompleteUntilMs: 50, WrittenAtMs: 210}}); err != nil {
		t.Fatal(err)
	}
	wms, err := s.Watermarks(ctx)
	if err != nil || len(wms) != 2 || wms[0] != (Watermark{100, 200}) || wms[3] != (Watermark{50, 210}) {
		t.Fatalf("watermarks %v %v", wms, err)
	}
}
