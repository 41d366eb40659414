//go:build integration

package query

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/hllstore/hllstoretest"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/internal/redisconn"
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
		var writes []hllstoretest.Write
		add := func(kind pixelpb.Kind, class hllstore.Class, n int) {
			r := hllstore.NewRecord()
			for i := range n {
				r.Add(uint64(d.Unix())*0x9e3779b97f4a7c15 ^ uint64(i)*0xbf58476d1ce4e5b9 ^ uint64(kind))
			}
			writes = append(writes, hllstoretest.Write{Key: hllstore.Key{ContentID: "bench:a", Kind: kind, Class: class, Gran: hllstore.GranularityDay, Start: d.UnixMilli()}, Record: &r})
		}
		add(pixelpb.Kind_KIND_VIEW, hllstore.Human, 5000)
		add(pixelpb.Kind_KIND_IMPRESSION, hllstore.Human, 8000)
		add(pixelpb.Kind_KIND_CLICK, hllstore.Human, 200)
		add(pixelpb.Kind_KIND_CONVERSION, hllstore.Human, 20)
		add(pixelpb.Kind_KIND_VIEW, hllstore.Bot, 300)
		if err := hllstoretest.Put(ctx, store, writes); err != nil {
			b.Fatal(err)
		}
	}
	cfg := DefaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.Token = "bench"
	s, err := New(cfg, nil, nil, counts.NewReader(store), nil)
	if err != nil {
		b.Fatal(err)
	}
	// The reference without rollups: every day read.
	daysOnly := counts.NewReader(store)
	daysOnly.Final = 0
	sd, err := New(cfg, nil, nil, daysOnly, nil)
	if err != nil {
		b.Fatal(err)
	}
	// cold: the week rollups of the range are deleted before every query,
	// so each one builds them from the days (the reader's fallback, what
	// the first query of a week pays when the aggregator's rollup job is
	// off or behind); job: deleted and built again before every query the
	// way the rollup job builds them (hllstore.Store.BuildWeek), outside
	// the timing, so the query finds them as a user's first query does;
	// warm: built by an earlier query and read.
	var weeks []int64
	for w := hllstore.WeekStart(start.UnixMilli()); w+hllstore.WeekMs <= end.UnixMilli(); w += hllstore.WeekMs {
		weeks = append(weeks, w)
	}
	for _, c := range []struct {
		days               int
		cold, job, noWeeks bool
	}{{1, false, false, false}, {90, false, false, true}, {90, true, false, false}, {90, false, true, false}, {90, false, false, false}} {
		name := fmt.Sprintf("days=%d", c.days)
		switch {
		case c.cold:
			name += "/cold"
		case c.job:
			name += "/job"
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
			var cpu time.Duration
			var bytes int64
			b.ReportAllocs()
			for b.Loop() {
				if c.cold || c.job {
					b.StopTimer()
					if _, err := redisconn.Del(ctx, rdb, pipetest.RedisKeys(b, rdb, prefix+":c:{bench:a:w*")...); err != nil {
						b.Fatal(err)
					}
					if c.job {
						for _, w := range weeks {
							if _, err := store.BuildWeek(ctx, []string{"bench:a"}, w); err != nil {
								b.Fatal(err)
							}
						}
					}
					b.StartTimer()
				}
				b.StopTimer()
				before := redisUsage(b, rdb)
				b.StartTimer()
				req := httptest.NewRequest("GET", target, nil)
				req.Header.Set("Authorization", "Bearer bench")
				rec := httptest.NewRecorder()
				t0 := time.Now()
				srv.srv.Handler.ServeHTTP(rec, req)
				lat = append(lat, time.Since(t0))
				b.StopTimer()
				after := redisUsage(b, rdb)
				cpu += after.cpu - before.cpu
				bytes += after.out - before.out
				b.StartTimer()
				if rec.Code != 200 {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			// Redis-wide counters of a shared server: other clients add to
			// them, so these are upper bounds.
			b.ReportMetric(float64(cpu.Microseconds())/float64(len(lat)), "redis-cpu-us/op")
			b.ReportMetric(float64(bytes)/float64(len(lat))/1024, "redis-out-KiB/op")
		})
	}
}

type usage struct {
	cpu time.Duration
	out int64
}

// redisUsage reads the server's CPU time (user + sys) and bytes sent.
func redisUsage(b *testing.B, rdb redis.UniversalClient) usage {
	info, err := rdb.Info(context.Background(), "cpu", "stats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var u usage
	for _, line := range strings.Split(info, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "used_cpu_user", "used_cpu_sys":
			f, _ := strconv.ParseFloat(v, 64)
			u.cpu += time.Duration(f * float64(time.Second))
		case "total_net_output_bytes":
			u.out, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return u
}
