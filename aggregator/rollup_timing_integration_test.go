//go:build integration

package aggregator

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/hllstore/hllstoretest"
	"github.com/pixelpipe/pixelpipe/internal/lease"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// BenchmarkFlushDuringRollup measures the aggregator's flush latency (5,000
// events of the benchmark workload per flush, ≈ 2,000 changed content id
// days) on a private redis-server, alone and while the rollup job rebuilds,
// over and over, the rollups of a final week of 300 content ids (7 days
// each with a dense 5,000-visitor view record), at its default rate and at
// a quarter of it. It reports the flush p50 and p99 and the rollups the job
// built per second.
func BenchmarkFlushDuringRollup(b *testing.B) {
	pr := pipetest.StartPrivateRedis(b)
	rdb := redis.NewClient(&redis.Options{Addr: pr.Addr()})
	b.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	store := hllstore.New(rdb, hllstore.Config{Prefix: "roll"})
	week := hllstore.WeekStart(time.Now().Add(-30 * 24 * time.Hour).UnixMilli())
	const contents = 300
	for c := range contents {
		var writes []hllstoretest.Write
		for d := range 7 {
			r := hllstore.NewRecord()
			for i := range 5000 {
				r.Add(mixKey(uint64(c*1_000_000 + d*1000 + i)))
			}
			writes = append(writes, hllstoretest.Write{Key: hllstore.Key{ContentID: "old-" + strconv.Itoa(c), Kind: pixelpb.Kind_KIND_VIEW, Gran: hllstore.GranularityDay, Start: week + int64(d)*hllstore.DayMs}, Record: &r})
		}
		if err := hllstoretest.Put(ctx, store, writes); err != nil {
			b.Fatal(err)
		}
	}
	cfg := DefaultConfig()
	jobNow := time.UnixMilli(week).Add(14*24*time.Hour + 2*time.Hour)
	if err := store.WriteWatermarks(ctx, map[int32]hllstore.Watermark{0: {CompleteUntilMs: jobNow.UnixMilli(), WrittenAtMs: jobNow.UnixMilli()}}); err != nil {
		b.Fatal(err)
	}
	const perFlush = 5000
	for _, rate := range []int{0, cfg.RollupRate, cfg.RollupRate / 4} {
		withJob := rate > 0
		name := "alone"
		if withJob {
			name = "with-job/rate=" + strconv.Itoa(rate)
		}
		b.Run(name, func(b *testing.B) {
			events := benchEvents(b.N * perFlush)
			a, err := New(cfg, nil, nil, nil, hllstore.New(rdb, hllstore.Config{Prefix: "agg" + strconv.FormatInt(time.Now().UnixNano(), 36)}), Outputs{})
			if err != nil {
				b.Fatal(err)
			}
			jctx, stop := context.WithCancel(ctx)
			var wg sync.WaitGroup
			var job *Rollups
			if withJob {
				jcfg := cfg
				jcfg.RollupRate = rate
				job, err = NewRollups(jcfg, nil, nil, store, lease.New(rdb, "roll"))
				if err != nil {
					b.Fatal(err)
				}
				job.now = func() time.Time { return jobNow }
				wg.Go(func() {
					for jctx.Err() == nil {
						// Start over: every rollup is built again.
						keys := rdb.Keys(ctx, "roll:c:{*:w*").Val()
						keys = append(keys, "roll:rolled:"+time.UnixMilli(week).UTC().Format("20060102"))
						rdb.Del(ctx, keys...)
						_ = job.RunOnce(jctx)
					}
				})
			}
			lat := make([]time.Duration, 0, b.N)
			start := time.Now()
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				if err := a.apply(ctx, events[i*perFlush:(i+1)*perFlush]); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				t0 := time.Now()
				if err := a.flush(ctx, false); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			elapsed := time.Since(start)
			stop()
			wg.Wait()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "flush-p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "flush-p99-ms")
			if job != nil {
				b.ReportMetric(testutil.ToFloat64(job.m.built)/elapsed.Seconds(), "rollups/s")
			}
		})
	}
}
