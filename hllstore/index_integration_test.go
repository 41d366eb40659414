//go:build integration

package hllstore

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// A day's first write puts its content id in the day index, before the
// day's data and only then: a failed index write leaves no data behind.
func TestDayIndex(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, Config{Prefix: prefix, DayRetention: time.Hour})
	ctx := context.Background()
	day := DayStart(time.Date(2026, 11, 28, 15, 0, 0, 0, time.UTC).UnixMilli())
	id := RecordID{Kind: pixelpb.Kind_KIND_VIEW, Hour: DayRecord}
	write := func(dk DayKey, d *Day) ([]bool, error) {
		d.Record(id).Add(uint64(len(d.Pos)) + 1)
		d.Pos[0]++
		return s.SaveDays(ctx, []DayWrite{{Key: dk, Day: d}})
	}
	members := func(dayStart int64) []string {
		t.Helper()
		var all []string
		for c := (DayCursor{}); !c.Done(); {
			ids, next, err := s.DayContents(ctx, dayStart, c, 100)
			if err != nil {
				t.Fatal(err)
			}
			all, c = append(all, ids...), next
		}
		slices.Sort(all)
		return slices.Compact(all)
	}

	a, b := DayKey{ContentID: "a", DayStart: day}, DayKey{ContentID: "b", DayStart: day}
	da, db := NewDay(), NewDay()
	for _, w := range []struct {
		k DayKey
		d *Day
	}{{a, da}, {b, db}} {
		if ok, err := write(w.k, w.d); err != nil || !ok[0] {
			t.Fatalf("write %v: %v %v", w.k, ok, err)
		}
	}
	if got := members(day); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("day index %v, want [a b]", got)
	}
	if ttl := rdb.TTL(ctx, s.dayIndexKey(a)).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("day index ttl %v, want the day retention (1h)", ttl)
	}
	// The index set of a content id's group and day shares the slot of the
	// group's day hashes.
	if d, _, _ := s.DayRedisKeys(a); hashTag(s.dayIndexKey(a)) != hashTag(d) {
		t.Fatalf("day index %s and day hash %s have different hash tags", s.dayIndexKey(a), d)
	}
	// Later writes of a day do not index it again (once per content id and
	// day, not per flush).
	rdb.Del(ctx, s.dayIndexKey(a))
	rdb.Del(ctx, s.dayIndexKey(b))
	if ok, err := write(a, da); err != nil || !ok[0] {
		t.Fatalf("second write: %v %v", ok, err)
	}
	if got := members(day); len(got) != 0 {
		t.Fatalf("a later write indexed the day again: %v", got)
	}
	// The index write comes first and must succeed: when it fails (here the
	// index key holds a string), the day is not written.
	next := day + DayMs
	c := DayKey{ContentID: "c", DayStart: next}
	if err := rdb.Set(ctx, s.dayIndexKey(c), "not a set", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := write(c, NewDay()); err == nil {
		t.Fatal("a day was saved although its index write failed")
	}
	dk, _, _ := s.DayRedisKeys(c)
	if n := rdb.Exists(ctx, dk).Val(); n != 0 {
		t.Fatal("data without an index entry: the day was written although its index write failed")
	}

	// The same for a campaign new to a day: its index entry is written
	// before the data, and a failed index write leaves no data behind.
	dd := NewDay()
	dd.Record(RecordID{Campaign: "spring", Kind: pixelpb.Kind_KIND_VIEW, Hour: DayRecord}).Add(7)
	if ok, err := write(DayKey{ContentID: "d", DayStart: day}, dd); err != nil || !ok[0] {
		t.Fatalf("write with a campaign: %v %v", ok, err)
	}
	if ids, err := s.CampaignContents(ctx, "spring", day); err != nil || !slices.Equal(ids, []string{"d"}) {
		t.Fatalf("campaign index %v %v, want [d]", ids, err)
	}
	if err := rdb.Set(ctx, s.campaignIndexKey("autumn", day), "not a set", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	de := NewDay()
	de.Record(RecordID{Campaign: "autumn", Kind: pixelpb.Kind_KIND_VIEW, Hour: DayRecord}).Add(8)
	e := DayKey{ContentID: "e", DayStart: day}
	if _, err := write(e, de); err == nil {
		t.Fatal("a day was saved although its campaign index write failed")
	}
	if dk, _, _ := s.DayRedisKeys(e); rdb.Exists(ctx, dk).Val() != 0 {
		t.Fatal("campaign data without an index entry: the day was written although its campaign index write failed")
	}
}

// hashTag returns the Redis Cluster hash tag of key: what its slot is
// computed from.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// Content ids of many groups and days: a scan of a day finds each of that
// day's once or more, whatever the batch size, and none of another day's.
func TestDayContentsScan(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, Config{Prefix: prefix, DayRetention: time.Hour})
	ctx := context.Background()
	day := DayStart(time.Date(2026, 11, 28, 15, 0, 0, 0, time.UTC).UnixMilli())
	var writes []DayWrite
	var want []string
	for i := range 700 {
		d := NewDay()
		d.Record(RecordID{Kind: pixelpb.Kind_KIND_VIEW, Hour: DayRecord}).Add(uint64(i) + 1)
		d.Pos[0] = int64(i)
		dk := DayKey{ContentID: "c" + strconv.Itoa(i), DayStart: day}
		if i%7 == 0 {
			dk.DayStart += DayMs
		} else {
			want = append(want, dk.ContentID)
		}
		writes = append(writes, DayWrite{Key: dk, Day: d})
	}
	if ok, err := s.SaveDays(ctx, writes); err != nil || slices.Contains(ok, false) {
		t.Fatalf("save: %v", err)
	}
	slices.Sort(want)
	for _, count := range []int64{1, 10, 1000} {
		var got []string
		calls := 0
		for c := (DayCursor{}); !c.Done(); calls++ {
			ids, next, err := s.DayContents(ctx, day, c, count)
			if err != nil {
				t.Fatal(err)
			}
			got, c = append(got, ids...), next
		}
		slices.Sort(got)
		if got = slices.Compact(got); !slices.Equal(got, want) {
			t.Fatalf("count %d: scanned %d content ids, want %d", count, len(got), len(want))
		}
		if calls > len(want)+1 {
			t.Fatalf("count %d: %d calls for %d content ids", count, calls, len(want))
		}
	}
}
