package hllstore

import (
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

func TestPositionsRoundTrip(t *testing.T) {
	t.Parallel()
	ps := Positions{0: 10, 5: 1 << 40, 11: 0}
	if got := ps.encode(); got != "0:10,5:1099511627776,11:0" {
		t.Fatalf("encoding %q is not sorted by partition", got)
	}
	got, err := decodePositions(ps.encode())
	if err != nil || len(got) != 3 || got[0] != 10 || got[5] != 1<<40 || got[11] != 0 {
		t.Fatalf("got %v %v", got, err)
	}
	if _, err := decodePositions("1:x"); err == nil {
		t.Fatal("bad position accepted")
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

func TestRedisKey(t *testing.T) {
	t.Parallel()
	s := New(nil, Config{Prefix: "x"})
	day := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC).UnixMilli()
	for _, tc := range []struct {
		k    Key
		want string
	}{
		{Key{ContentID: "a-1", Kind: 2, Gran: pixelpb.Granularity_GRANULARITY_DAY, Start: day}, "x:c:a-1:2:human:d:20261128"},
		{Key{ContentID: "a-1", Kind: 1, Class: Bot, Gran: pixelpb.Granularity_GRANULARITY_HOUR, Start: day + 13*HourMs}, "x:c:a-1:1:bot:h:2026112813"},
		{Key{ContentID: "a-1", Campaign: "spring", Kind: 4, Class: Machine, Gran: pixelpb.Granularity_GRANULARITY_DAY, Start: day}, "x:c:a-1:g:spring:4:machine:d:20261128"},
	} {
		if got := s.RedisKey(tc.k); got != tc.want {
			t.Errorf("key %q, want %q", got, tc.want)
		}
	}
}
