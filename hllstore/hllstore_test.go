package hllstore

import (
	"testing"
	"time"
)

func TestPositionsRoundTrip(t *testing.T) {
	t.Parallel()
	ps := Positions{0: 10, 5: 1 << 40, 11: 0}
	got, err := decodePositions(ps.encode())
	if err != nil || len(got) != 3 || got[0] != 10 || got[5] != 1<<40 || got[11] != 0 {
		t.Fatalf("got %v %v", got, err)
	}
	if _, err := decodePositions("1:x"); err == nil {
		t.Fatal("bad position accepted")
	}
}

func TestDayStart(t *testing.T) {
	t.Parallel()
	noon := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC).UnixMilli()
	if got, want := DayStart(noon), time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC).UnixMilli(); got != want {
		t.Fatalf("DayStart = %d, want %d", got, want)
	}
	if got := DayStart(-1); got != -DayMs {
		t.Fatalf("DayStart(-1) = %d", got)
	}
}

func TestRedisKey(t *testing.T) {
	t.Parallel()
	s := New(nil, Config{Prefix: "x"})
	k := Key{ContentID: "a-1", Kind: 2, DayStartMs: time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC).UnixMilli()}
	if got := s.RedisKey(k); got != "x:c:a-1:2:d:20261128" {
		t.Fatalf("key %q", got)
	}
}
