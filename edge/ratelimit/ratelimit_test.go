package ratelimit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestObserve(t *testing.T) {
	t.Parallel()
	tb := New(1024, time.Second)
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC).UnixNano()
	a, b := []byte{198, 51, 100, 7}, []byte{203, 0, 113, 9}
	for i := 1; i <= 500; i++ {
		if got := tb.Observe(a, t0); got != uint32(i) {
			t.Fatalf("hit %d in one window: estimate %d", i, got)
		}
	}
	if got := tb.Observe(b, t0); got != 1 {
		t.Fatalf("another key: %d, want 1", got)
	}
	// Half-way through the next window half of the previous one still counts.
	if got := tb.Observe(a, t0+int64(1500*time.Millisecond)); got != 1+250 {
		t.Fatalf("sliding estimate %d, want 251", got)
	}
	// Two windows later nothing of the burst is left.
	if got := tb.Observe(a, t0+int64(3*time.Second)); got != 1 {
		t.Fatalf("after the burst: %d, want 1", got)
	}
}

func TestBoundedUnderManyKeys(t *testing.T) {
	t.Parallel()
	tb := New(1<<12, time.Second)
	before := tb.Bytes()
	now := time.Now().UnixNano()
	// 100,000 keys of one hit each: memory does not move, and the few that
	// share both cells with others are over-estimated by little.
	worst := uint32(0)
	for i := range 100_000 {
		worst = max(worst, tb.Observe([]byte(fmt.Sprint("10.", i)), now))
	}
	if tb.Bytes() != before || before != 2*8*4096 {
		t.Fatalf("table is %d bytes, want %d", tb.Bytes(), before)
	}
	if worst > 200 {
		t.Fatalf("a one-hit key was estimated at %d", worst)
	}
}

func TestConcurrentCountsExact(t *testing.T) {
	t.Parallel()
	tb := New(64, time.Second)
	now := time.Now().UnixNano()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				tb.Observe([]byte("k"), now)
			}
		}()
	}
	wg.Wait()
	if got := tb.Observe([]byte("k"), now); got != 8001 {
		t.Fatalf("estimate %d after 8001 concurrent hits", got)
	}
}

func TestObserveAllocations(t *testing.T) {
	tb := New(1024, time.Second)
	key := []byte{1, 2, 3, 4}
	if n := testing.AllocsPerRun(1000, func() { tb.Observe(key, 1) }); n != 0 {
		t.Fatalf("Observe allocates %.1f times", n)
	}
}

func BenchmarkObserve(b *testing.B) {
	tb := New(1<<16, time.Second)
	key := []byte{198, 51, 100, 7}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		now := time.Now().UnixNano()
		for pb.Next() {
			tb.Observe(key, now)
		}
	})
}
