//go:build integration

package hllstore

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

func record(total uint64, visitors []uint64, pos Positions) Record {
	sk := NewSketch()
	for _, v := range visitors {
		sk.InsertHash(v)
	}
	return Record{Total: total, Sketch: sk, Pos: pos}
}

func TestSaveLoadAndPositionGuard(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, Config{Prefix: prefix, Retention: time.Hour})
	ctx := context.Background()
	day := DayStart(time.Date(2026, 11, 28, 15, 0, 0, 0, time.UTC).UnixMilli())
	k := Key{ContentID: "a-1", Kind: pixelpb.Kind_KIND_VIEW, DayStartMs: day}

	recs, err := s.Load(ctx, []Key{k})
	if err != nil || recs[0].Total != 0 || recs[0].Sketch.Estimate() != 0 || len(recs[0].Pos) != 0 {
		t.Fatalf("empty load: %+v %v", recs, err)
	}

	v1 := record(3, []uint64{0x1111111111111111, 0x2222222222222222, 0x3333333333333333}, Positions{0: 10, 1: 5})
	if w, err := s.Save(ctx, []Write{{k, v1}}); err != nil || !w[0] {
		t.Fatalf("first save: %v %v", w, err)
	}
	// Saving the same state again (a retried write) is accepted and changes nothing.
	if w, err := s.Save(ctx, []Write{{k, v1}}); err != nil || !w[0] {
		t.Fatalf("repeated save: %v %v", w, err)
	}
	// A stale owner whose position is behind on any partition is refused.
	stale := record(99, nil, Positions{0: 9, 1: 50})
	if w, err := s.Save(ctx, []Write{{k, stale}}); err != nil || w[0] {
		t.Fatalf("stale save was accepted: %v %v", w, err)
	}
	// So is one that lacks a partition the stored record has.
	if w, _ := s.Save(ctx, []Write{{k, record(99, nil, Positions{0: 50})}}); w[0] {
		t.Fatal("save missing a stored partition was accepted")
	}
	recs, err = s.Load(ctx, []Key{k})
	if err != nil {
		t.Fatal(err)
	}
	got := recs[0]
	if got.Total != 3 || got.Sketch.Estimate() != 3 || got.Pos[0] != 10 || got.Pos[1] != 5 || len(got.Pos) != 2 {
		t.Fatalf("loaded %+v, estimate %d", got, got.Sketch.Estimate())
	}
	if !got.Pos.Covers(0, 10) || got.Pos.Covers(0, 11) || got.Pos.Covers(7, 0) {
		t.Fatal("Covers disagrees with the stored positions")
	}
	ttl, err := rdb.TTL(ctx, s.RedisKey(k)).Result()
	if err != nil || ttl <= 0 || ttl > time.Hour {
		t.Fatalf("ttl %v %v", ttl, err)
	}
}

func TestQueryMergesDays(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, Config{Prefix: prefix})
	ctx := context.Background()
	d0 := DayStart(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	var writes []Write
	// Day n has visitors n*1000 .. n*1000+1999: consecutive days overlap by half.
	for n := 0; n < 3; n++ {
		var vs []uint64
		for v := n * 1000; v < n*1000+2000; v++ {
			vs = append(vs, mix(uint64(v)))
		}
		writes = append(writes, Write{
			Key:    Key{ContentID: "m", Kind: pixelpb.Kind_KIND_VIEW, DayStartMs: d0 + int64(n)*DayMs},
			Record: record(uint64(len(vs)), vs, Positions{0: int64(n)}),
		})
	}
	if _, err := s.Save(ctx, writes); err != nil {
		t.Fatal(err)
	}
	st, err := s.Query(ctx, "m", pixelpb.Kind_KIND_VIEW, d0, d0+3*DayMs)
	if err != nil {
		t.Fatal(err)
	}
	if st.Total != 6000 {
		t.Fatalf("total %d, want 6000", st.Total)
	}
	if d := math.Abs(float64(st.Uniques) - 4000); d > 4*0.0081*4000 {
		t.Fatalf("uniques %d, want 4000 (distinct over the range, not the sum 6000)", st.Uniques)
	}
	st, _ = s.Query(ctx, "m", pixelpb.Kind_KIND_CLICK, d0, d0+3*DayMs)
	if st.Total != 0 {
		t.Fatalf("other kind counted: %+v", st)
	}
}

// mix spreads small integers over 64 bits, as visitor keys are.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	return x ^ x>>33
}
