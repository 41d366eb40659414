package hllstore

import (
	"strconv"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

func TestWeekStart(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Time{
		time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), // Monday
		time.Date(2026, 11, 29, 23, 59, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 12, 0, 0, 0, time.UTC),
	} {
		w := time.UnixMilli(WeekStart(d.UnixMilli())).UTC()
		if w.Weekday() != time.Monday || w.After(d) || d.Sub(w) >= 7*24*time.Hour || w != w.Truncate(24*time.Hour) {
			t.Errorf("WeekStart(%v) = %v", d, w)
		}
	}
}

func TestBucketStart(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 11, 28, 12, 34, 56, 0, time.UTC).UnixMilli()
	if got, want := DayStart(ts), time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC).UnixMilli(); got != want {
		t.Fatalf("DayStart = %d, want %d", got, want)
	}
	if got, want := BucketStart(pixelpb.Granularity_GRANULARITY_HOUR, ts), time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC).UnixMilli(); got != want {
		t.Fatalf("hour start = %d, want %d", got, want)
	}
	if got := DayStart(-1); got != -DayMs {
		t.Fatalf("DayStart(-1) = %d", got)
	}
}

func TestDayKeysAndFields(t *testing.T) {
	t.Parallel()
	s := New(nil, Config{Prefix: "x"})
	day := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC).UnixMilli()
	d, h, b := s.DayRedisKeys(DayKey{ContentID: "a-1", DayStart: day})
	g := GroupOf("a-1")
	if d != "x:c:{"+g+":20261128}:a-1:d" || h != "x:c:{"+g+":20261128}:a-1:h" || b != "x:c:{"+g+":20261128}:a-1:b" {
		t.Fatalf("keys %q %q %q", d, h, b)
	}
	// The group is FNV-1a of the content id modulo 256, in hex: readers in
	// other languages compute it the same way.
	if g != "06" || GroupOf("") != "c5" {
		t.Fatalf("groups %q %q", g, GroupOf(""))
	}
	seen := map[string]bool{}
	for i := range 4096 {
		seen[GroupOf(strconv.Itoa(i))] = true
	}
	if len(seen) != Groups {
		t.Fatalf("4096 content ids fell in %d groups, want %d", len(seen), Groups)
	}
	for _, tc := range []struct {
		k     Key
		field string
	}{
		{Key{ContentID: "a-1", Kind: 2, Gran: pixelpb.Granularity_GRANULARITY_DAY, Start: day}, "2|0|"},
		{Key{ContentID: "a-1", Kind: 1, Class: Bot, Gran: pixelpb.Granularity_GRANULARITY_HOUR, Start: day + 13*HourMs}, "13|1|1|"},
		{Key{ContentID: "a-1", Campaign: "spring:x", Kind: 4, Class: Machine, Gran: pixelpb.Granularity_GRANULARITY_DAY, Start: day}, "4|2|spring:x"},
	} {
		dk, id := tc.k.Split()
		if got := rid(id); got != tc.field {
			t.Errorf("rid %q, want %q", got, tc.field)
		}
		if back := dk.Key(id); back != tc.k {
			t.Errorf("Split/Key round trip %+v -> %+v", tc.k, back)
		}
		kind, pid, _, ok := parseField("n|"+rid(id), id.Hour != DayRecord)
		if !ok || kind != "n" || pid != id {
			t.Errorf("parseField(%q) = %q %+v %v", "n|"+rid(id), kind, pid, ok)
		}
	}
	if _, id, order, ok := parseField("o|4|0||ord-1", false); !ok || order != "ord-1" || id.Kind != 4 {
		t.Errorf("order field: %+v %q %v", id, order, ok)
	}
}
