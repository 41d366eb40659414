//go:build integration

package query

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// BenchmarkStatsRange answers GET /v1/stats/{cid} over 90 days and, as the
// reference in the same run, over 1 day, through the handler on the real
// Redis: per day one content id has 5,000 visitors' views (dense sketches),
// 8,000 impressions, 200 clicks, 20 conversions, and bot views. It reports
// p50 and p99 latency.
func BenchmarkStatsRange(b *testing.B) {
	rdb, prefix := pipetest.Redis(b)
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	ctx := context.Background()
	end := time.Now().UTC().Truncate(24 * time.Hour)
	start := end.Add(-90 * 24 * time.Hour)
	for d := start; d.Before(end); d = d.Add(24 * time.Hour) {
		var writes []hllstore.Write
		add := func(kind pixelpb.Kind, class hllstore.Class, n int) {
			r := hllstore.NewRecord()
			for i := range n {
				r.Total++
				r.Sketch.InsertHash(uint64(d.Unix())*0x9e3779b97f4a7c15 ^ uint64(i)*0xbf58476d1ce4e5b9 ^ uint64(kind))
			}
			r.Pos[0] = 1
			writes = append(writes, hllstore.Write{Key: hllstore.Key{ContentID: "bench:a", Kind: kind, Class: class, Gran: pixelpb.Granularity_GRANULARITY_DAY, Start: d.UnixMilli()}, Record: &r})
		}
		add(pixelpb.Kind_KIND_VIEW, hllstore.Human, 5000)
		add(pixelpb.Kind_KIND_IMPRESSION, hllstore.Human, 8000)
		add(pixelpb.Kind_KIND_CLICK, hllstore.Human, 200)
		add(pixelpb.Kind_KIND_CONVERSION, hllstore.Human, 20)
		add(pixelpb.Kind_KIND_VIEW, hllstore.Bot, 300)
		if err := store.Put(ctx, writes); err != nil {
			b.Fatal(err)
		}
	}
	cfg := DefaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.Token = "bench"
	s, err := New(cfg, nil, counts.NewReader(store))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.ln.Close() })
	// The reference without rollups: every day read.
	daysOnly := counts.NewReader(store)
	daysOnly.Final = 0
	sd, err := New(cfg, nil, daysOnly)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sd.ln.Close() })
	// cold: the week rollups of the range are deleted before every query,
	// so each one builds them from the days (the first query of a week
	// after its days became final); warm: they are read.
	for _, c := range []struct {
		days          int
		cold, noWeeks bool
	}{{1, false, false}, {90, false, true}, {90, true, false}, {90, false, false}} {
		name := fmt.Sprintf("days=%d", c.days)
		switch {
		case c.cold:
			name += "/cold"
		case c.noWeeks:
			name += "/days-only"
		}
		srv := s
		if c.noWeeks {
			srv = sd
		}
		b.Run(name, func(b *testing.B) {
			target := "/v1/stats/bench:a?from=" + end.Add(-time.Duration(c.days)*24*time.Hour).Format(dayLayout) + "&to=" + end.Format(dayLayout)
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			for b.Loop() {
				if c.cold {
					b.StopTimer()
					if keys, err := rdb.Keys(ctx, prefix+":c:{bench:a:w*").Result(); err != nil {
						b.Fatal(err)
					} else if len(keys) > 0 {
						rdb.Del(ctx, keys...)
					}
					b.StartTimer()
				}
				req := httptest.NewRequest("GET", target, nil)
				req.Header.Set("Authorization", "Bearer bench")
				rec := httptest.NewRecorder()
				t0 := time.Now()
				srv.srv.Handler.ServeHTTP(rec, req)
				lat = append(lat, time.Since(t0))
				if rec.Code != 200 {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
