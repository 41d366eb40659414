//go:build integration

package state

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/processor/session"
)

func TestCheckpointRoundTripAndGuard(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, prefix, time.Minute)
	ctx := context.Background()
	p := Partition{Group: "g", Topic: "hits", ID: 3}

	c, open, err := s.Load(ctx, p)
	if err != nil || c.Next != -1 || len(open) != 0 {
		t.Fatalf("empty partition: %+v %v %v", c, open, err)
	}
	withSession := &session.State{Visitor: 0xabc, NewestMs: 5000, Seen: []session.Seen{{ID: [16]byte{1}, AtMs: 5000}},
		Open: &session.Open{ID: [16]byte{9}, Site: "s", StartMs: 4000, LastMs: 5000, Seq: 2, Pages: 2}}
	closed := &session.State{Visitor: 0xdef, NewestMs: 100}
	ok, err := s.Checkpoint(ctx, p, Clock{Next: 10, WatermarkMs: 5000, NextSweepMs: 60000}, []*session.State{withSession, closed})
	if err != nil || !ok {
		t.Fatalf("checkpoint: %v %v", ok, err)
	}
	c, open, err = s.Load(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Clock{Next: 10, WatermarkMs: 5000, NextSweepMs: 60000}, c); diff != "" {
		t.Fatalf("clock (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[uint64]int64{0xabc: 5000}, open); diff != "" {
		t.Fatalf("open index (-want +got):\n%s", diff)
	}
	got, err := s.Visitors(ctx, p, []uint64{0xabc, 0xdef, 0x123})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]*session.State{withSession, closed, nil}, got); diff != "" {
		t.Fatalf("visitors (-want +got):\n%s", diff)
	}
	if ttl := rdb.PTTL(ctx, s.visitorKey(p, 0xabc)).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("visitor state TTL %v, want ≤ 1m", ttl)
	}

	// A stale owner (position 8 < 10) cannot overwrite; the same position
	// again (a replay of the same batch) can.
	stale := &session.State{Visitor: 0xabc}
	if ok, err := s.Checkpoint(ctx, p, Clock{Next: 8}, []*session.State{stale}); err != nil || ok {
		t.Fatalf("backwards checkpoint accepted: %v %v", ok, err)
	}
	if got, _ := s.Visitors(ctx, p, []uint64{0xabc}); !cmp.Equal(got[0], withSession) {
		t.Fatalf("refused checkpoint changed the state: %+v", got[0])
	}
	withSession.Open = nil
	if ok, err := s.Checkpoint(ctx, p, Clock{Next: 10, WatermarkMs: 5000, NextSweepMs: 60000}, []*session.State{withSession}); err != nil || !ok {
		t.Fatalf("same-position checkpoint refused: %v %v", ok, err)
	}
	if _, open, _ := s.Load(ctx, p); len(open) != 0 {
		t.Fatalf("closed session still in the open index: %v", open)
	}
	// Another group's state is separate.
	if c, _, _ := s.Load(ctx, Partition{Group: "other", Topic: "hits", ID: 3}); c.Next != -1 {
		t.Fatalf("other group sees position %d", c.Next)
	}
}
