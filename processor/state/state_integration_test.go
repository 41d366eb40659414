//go:build integration

package state

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/pixelpipe/pixelpipe/audit"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/processor/session"
)

func TestSnapshotBaseDeltasAndGuards(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, prefix, time.Minute)
	ctx := context.Background()
	p := Partition{Group: "g", Topic: "hits", ID: 3}

	snap, err := s.Load(ctx, p)
	if err != nil || snap.Clock.Next != -1 || len(snap.Visitors) != 0 {
		t.Fatalf("empty partition: %+v %v", snap, err)
	}
	a := &session.State{Visitor: 0xa, NewestMs: 5000, Seen: []session.Seen{{ID: [16]byte{1}, AtMs: 5000}},
		Open: &session.Open{ID: [16]byte{9}, Site: "s", StartMs: 4000, LastMs: 5000, Seq: 2, Pages: 2}}
	b := &session.State{Visitor: 0xb, NewestMs: 100}
	c1 := Clock{Next: 10, WatermarkMs: 5000, NextSweepMs: 60000}
	if ok, n, err := s.SaveBase(ctx, p, -1, c1, []*session.State{a, b}, nil); err != nil || !ok || n == 0 {
		t.Fatalf("base: %v %d %v", ok, n, err)
	}
	if ttl := rdb.PTTL(ctx, s.key(p)).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("snapshot TTL %v, want ≤ 1m", ttl)
	}

	// Two deltas: a changes, b is evicted, c is new; then c changes again.
	a2 := &session.State{Visitor: 0xa, NewestMs: 7000, Seen: a.Seen}
	c := &session.State{Visitor: 0xc, NewestMs: 6500, Alias: 0xa, HoldMs: 86_400_000}
	c2 := Clock{Next: 20, WatermarkMs: 7000, NextSweepMs: 60000}
	if ok, _, err := s.SaveDelta(ctx, p, 10, c2, 1, []*session.State{a2, c}, []uint64{0xb}, nil); err != nil || !ok {
		t.Fatalf("delta 1: %v %v", ok, err)
	}
	c3 := Clock{Next: 25, WatermarkMs: 7100, NextSweepMs: 60000}
	cc := &session.State{Visitor: 0xc, NewestMs: 7100, Alias: 0xa, HoldMs: 86_400_000}
	if ok, _, err := s.SaveDelta(ctx, p, 20, c3, 2, []*session.State{cc}, nil, nil); err != nil || !ok {
		t.Fatalf("delta 2: %v %v", ok, err)
	}
	snap, err = s.Load(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]*session.State{0xa: a2, 0xc: cc}
	if diff := cmp.Diff(want, snap.Visitors, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("visitors after base and two deltas (-want +got):\n%s", diff)
	}
	if snap.Clock != c3 || snap.Deltas != 2 || snap.BaseBytes == 0 || snap.DeltaBytes == 0 {
		t.Fatalf("clock %+v, deltas %d, bytes %d/%d", snap.Clock, snap.Deltas, snap.BaseBytes, snap.DeltaBytes)
	}

	// A delta or a base made on another position (a stale owner's
	// lineage, or one that loaded nothing) is refused, even one ahead.
	if ok, _, err := s.SaveDelta(ctx, p, 20, Clock{Next: 30}, 2, []*session.State{b}, nil, nil); err != nil || ok {
		t.Fatalf("delta on a position not stored accepted: %v %v", ok, err)
	}
	for _, prev := range []int64{-1, 20, 24} {
		if ok, _, err := s.SaveBase(ctx, p, prev, Clock{Next: 40}, []*session.State{b}, nil); err != nil || ok {
			t.Fatalf("base on position %d (stored 25) accepted: %v %v", prev, ok, err)
		}
	}
	if snap2, _ := s.Load(ctx, p); !cmp.Equal(snap2.Visitors, want, cmpopts.EquateEmpty()) || snap2.Clock != c3 {
		t.Fatal("a refused write changed the snapshot")
	}
	// A base on the stored position replaces base and deltas.
	c4 := Clock{Next: 25, WatermarkMs: 7100, NextSweepMs: 120000}
	if ok, _, err := s.SaveBase(ctx, p, 25, c4, []*session.State{b}, nil); err != nil || !ok {
		t.Fatalf("base at the stored position refused: %v %v", ok, err)
	}
	snap, err = s.Load(ctx, p)
	if err != nil || snap.Deltas != 0 || snap.Clock != c4 || !cmp.Equal(snap.Visitors, map[uint64]*session.State{0xb: b}, cmpopts.EquateEmpty()) {
		t.Fatalf("after a new base: %+v %v", snap, err)
	}
	// Another group's state is separate.
	if other, _ := s.Load(ctx, Partition{Group: "other", Topic: "hits", ID: 3}); other.Clock.Next != -1 {
		t.Fatalf("other group sees position %d", other.Clock.Next)
	}
}

// A hash that lost a delta, or holds a corrupt blob, fails to load rather
// than giving a state with a hole in it.
func TestSnapshotLoadRefusesHoles(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, prefix, time.Minute)
	ctx := context.Background()
	p := Partition{Group: "g", Topic: "hits", ID: 0}
	if ok, _, err := s.SaveBase(ctx, p, -1, Clock{Next: 1}, nil, nil); !ok || err != nil {
		t.Fatal(ok, err)
	}
	for n := 1; n <= 2; n++ {
		if ok, _, err := s.SaveDelta(ctx, p, int64(n), Clock{Next: int64(n + 1)}, n, nil, nil, nil); !ok || err != nil {
			t.Fatal(n, ok, err)
		}
	}
	rdb.HDel(ctx, s.key(p), "d:1")
	if _, err := s.Load(ctx, p); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("snapshot with a missing delta: %v, want ErrCorrupt", err)
	}
	rdb.HSet(ctx, s.key(p), "d:1", "\x01\x05")
	if _, err := s.Load(ctx, p); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("snapshot with a corrupt delta: %v, want ErrCorrupt", err)
	}
}

// The audit rides with the snapshot: its lanes are stored in the snapshot
// hash, its figures added (the fifth number kept as a maximum), its gap
// lists set and deleted; a refused snapshot writes none of it.
func TestSnapshotCarriesAudit(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, prefix, time.Minute)
	ctx := context.Background()
	p := Partition{Group: "g", Topic: "hits", ID: 1}
	ak := prefix + ":audit:{g|hits|1}:20261204"
	a := func(lanes string, ops ...audit.Op) *Audit {
		return &Audit{Lanes: []byte(lanes), TTL: time.Hour, Writes: []audit.Write{{Key: ak, Ops: ops}}}
	}
	if ok, _, err := s.SaveBase(ctx, p, -1, Clock{Next: 10}, nil, a("L1",
		audit.Op{Field: "m|1|e", Kind: 'i', Value: "3 1 0 0 500"}, audit.Op{Field: "g|7|e", Kind: 's', Value: "4-5@600"})); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ok, _, err := s.SaveDelta(ctx, p, 10, Clock{Next: 20}, 1, nil, nil, a("L2",
		audit.Op{Field: "m|1|e", Kind: 'i', Value: "2 0 1 1 400"}, audit.Op{Field: "g|7|e", Kind: 'd'})); !ok || err != nil {
		t.Fatal(ok, err)
	}
	// Refused: on a position not stored.
	if ok, _, err := s.SaveDelta(ctx, p, 10, Clock{Next: 30}, 2, nil, nil, a("L3",
		audit.Op{Field: "m|1|e", Kind: 'i', Value: "100 0 0 0 900"})); ok || err != nil {
		t.Fatal(ok, err)
	}
	got := rdb.HGetAll(ctx, ak).Val()
	if want := map[string]string{"m|1|e": "5 1 1 1 500"}; !cmp.Equal(got, want) {
		t.Fatalf("audit hash %v, want %v", got, want)
	}
	if ttl := rdb.PTTL(ctx, ak).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("audit hash TTL %v", ttl)
	}
	snap, err := s.Load(ctx, p)
	if err != nil || string(snap.Audit) != "L2" {
		t.Fatalf("lanes %q, %v", snap.Audit, err)
	}
}
