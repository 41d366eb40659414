//go:build integration

package hllstore

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// A save whose calls partly fail (on a Redis Cluster: one node down while
// the others answer) reports which days it did not write, and writes the
// others: those are clean, at their new version, and their next write is
// accepted; the failed ones are written when saved again.
func TestSaveDaysPartialFailure(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, Config{Prefix: prefix})
	ctx := context.Background()
	day := DayStart(time.Date(2026, 5, 7, 0, 0, 0, 0, time.UTC).UnixMilli())
	id := RecordID{Kind: pixelpb.Kind_KIND_VIEW, Hour: DayRecord}
	var writes []DayWrite
	for i := range 12 { // several groups
		d := NewDay()
		d.Record(id).Add(uint64(i) + 1)
		d.Pos[0] = int64(i)
		writes = append(writes, DayWrite{Key: DayKey{ContentID: "p" + strconv.Itoa(i), DayStart: day}, Day: d})
	}
	// The day hash of writes[3]'s group is not a hash: its call fails, as
	// a call to a node that went down would.
	broken, _, _ := s.DayRedisKeys(writes[3].Key)
	if err := rdb.Set(ctx, broken, "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var inBroken []int
	for i, w := range writes {
		if dh, _, _ := s.DayRedisKeys(w.Key); dh == broken {
			inBroken = append(inBroken, i)
		}
	}
	written, err := s.SaveDays(ctx, writes)
	var se *SaveError
	if !errors.As(err, &se) {
		t.Fatalf("save with a failing call: %v, want a *SaveError", err)
	}
	if !slices.Equal(se.Failed, inBroken) || se.Days != len(writes) {
		t.Fatalf("failed days %v of %d, want %v of %d", se.Failed, se.Days, inBroken, len(writes))
	}
	for i, w := range writes {
		failed := slices.Contains(inBroken, i)
		if written[i] == failed || (w.Day.Version == 1) == failed || w.Day.Dirty() != failed {
			t.Fatalf("day %d (failed %v): written %v, version %d, dirty %v", i, failed, written[i], w.Day.Version, w.Day.Dirty())
		}
	}
	if err := rdb.Del(ctx, broken).Err(); err != nil {
		t.Fatal(err)
	}
	for _, w := range writes {
		w.Day.Record(id).Add(1000)
		w.Day.Pos[0] += 100
	}
	written, err = s.SaveDays(ctx, writes)
	if err != nil || slices.Contains(written, false) {
		t.Fatalf("second save: %v %v", written, err)
	}
	for i, w := range writes {
		// Both events of every day, the failed days' in one write.
		got, err := s.Load(ctx, []Key{w.Key.Key(id)})
		if err != nil || got[0].Total != 2 {
			t.Fatalf("day %d: %+v %v, want 2 events", i, got[0], err)
		}
	}
}

// Lost tells a day whose last write Redis no longer holds (the day hash
// restored to what it was before the write, as a failover to a replica
// that had not received it leaves it, or gone altogether) from one Redis
// holds, one another writer moved on, and one never written.
func TestLost(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, Config{Prefix: prefix})
	ctx := context.Background()
	day := DayStart(time.Date(2026, 5, 8, 0, 0, 0, 0, time.UTC).UnixMilli())
	id := RecordID{Kind: pixelpb.Kind_KIND_VIEW, Hour: DayRecord}
	keys := []DayKey{{"held", day}, {"lost", day}, {"moved", day}, {"gone", day}, {"new", day}}
	days := make([]*Day, len(keys))
	save := func(i int, d *Day) {
		t.Helper()
		d.Record(id).Add(uint64(len(d.Pos)) + 1)
		d.Pos[0]++
		w, err := s.SaveDays(ctx, []DayWrite{{Key: keys[i], Day: d}})
		if err != nil || !w[0] {
			t.Fatalf("save %s: %v %v", keys[i].ContentID, w, err)
		}
	}
	for i := range 4 {
		days[i] = NewDay()
		save(i, days[i])
	}
	days[4] = NewDay()
	days[4].Record(id).Add(1) // applied, never written
	// "lost": written twice, the second write undone.
	lostKey, _, _ := s.DayRedisKeys(keys[1])
	dump, err := rdb.Dump(ctx, lostKey).Result()
	if err != nil {
		t.Fatal(err)
	}
	save(1, days[1])
	if err := rdb.RestoreReplace(ctx, lostKey, 0, dump).Err(); err != nil {
		t.Fatal(err)
	}
	// "moved": another writer loaded it and wrote over it.
	other, err := s.LoadDays(ctx, keys[2:3])
	if err != nil {
		t.Fatal(err)
	}
	save(2, other[0])
	// "gone": its guard deleted.
	goneKey, _, _ := s.DayRedisKeys(keys[3])
	if err := rdb.HDel(ctx, goneKey, DayField(keys[3])+fieldGuard).Err(); err != nil {
		t.Fatal(err)
	}
	lost, err := s.Lost(ctx, keys, days)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{false, true, false, true, false}; !slices.Equal(lost, want) {
		t.Fatalf("lost %v, want %v (held, lost, moved, gone, new)", lost, want)
	}
}
