package spool

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkAppend appends 300-byte records (a typical raw hit) to a spool
// with the default segment size and sync mode, on the test's temporary
// folder: ns/op is one append, and p50/p99.9 of the individual appends
// (each timed with time.Now, which adds its own ≈ 40 ns) show the tail a
// page fault or a segment roll puts on a request. The records are read and
// acknowledged every 100,000 appends, off the clock, so the disk holds a
// few segments at most.
func BenchmarkAppend(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Dir = b.TempDir()
	s, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rec := make([]byte, 300)
	lat := make([]time.Duration, 0, b.N)
	b.SetBytes(int64(len(rec)))
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if err := s.Append(rec); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		if i%100_000 == 99_999 {
			b.StopTimer()
			_ = drain(b, s)
			b.StartTimer()
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*999/1000].Nanoseconds()), "p99.9-ns")
}
