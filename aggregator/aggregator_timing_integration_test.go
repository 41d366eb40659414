//go:build integration

package aggregator

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Workload of the aggregator benchmarks: Zipf-popular content ids (s=1.1
// over 10,000), 200,000 visitors, one hour of event time, six source
// partitions. At the default 1 s freshness an aggregator taking 50,000
// events/s flushes every 50,000 events; both designs keep the same counts:
// totals and uniques per content id, per hour and per day.
const (
	benchContents    = 10_000
	benchVisitors    = 200_000
	benchChunk       = 1_000 // events per benchmark iteration
	benchFlushEvery  = 50    // iterations (50,000 events) per flush
	benchDetailEvery = 10    // flushes per detail flush (DetailInterval / FlushInterval)
)

func benchEvents(n int) []*pixelpb.Event {
	rng := rand.New(rand.NewPCG(42, 42))
	z := rand.NewZipf(rand.New(rand.NewPCG(7, 7)), 1.1, 1, benchContents-1)
	t0 := time.Now().Truncate(time.Hour).UnixMilli()
	offsets := make([]int64, 6)
	out := make([]*pixelpb.Event, n)
	for i := range n {
		p := rng.IntN(6)
		offsets[p]++
		out[i] = &pixelpb.Event{
			ContentId:  "content-" + strconv.FormatUint(z.Uint64(), 10),
			Kind:       pixelpb.Kind_KIND_VIEW,
			Origin:     &pixelpb.Origin{ReceivedAtMs: t0 + int64(i)*3_600_000/int64(n)},
			Source:     &pixelpb.SourcePosition{Partition: int32(p), Offset: offsets[p]},
			VisitorKey: mixKey(uint64(rng.IntN(benchVisitors))),
		}
	}
	return out
}

func mixKey(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	return x ^ x>>33
}

// redisUsage is what INFO reports of the server's work so far, and what
// the client sent and spent.
type redisUsage struct {
	cpu       float64 // Redis seconds, user + system
	commands  float64 // commands the client sent (a script's inner calls not counted)
	inBytes   float64
	clientCPU float64 // this process's CPU seconds
}

// cmdCounter counts the commands a client sends, pipelined or not.
type cmdCounter struct{ n int64 }

func (c *cmdCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *cmdCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n++; return next(ctx, cmd) }
}
func (c *cmdCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n += int64(len(cmds)); return next(ctx, cmds) }
}

func processCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func readUsage(b *testing.B, rdb *redis.Client, cc *cmdCounter) redisUsage {
	b.Helper()
	info, err := rdb.Info(context.Background(), "cpu", "commandstats", "stats").Result()
	if err != nil {
		b.Fatal(err)
	}
	u := redisUsage{commands: float64(cc.n), clientCPU: processCPU()}
	for _, line := range strings.Split(info, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch {
		case k == "used_cpu_user" || k == "used_cpu_sys":
			f, _ := strconv.ParseFloat(v, 64)
			u.cpu += f
		case k == "total_net_input_bytes":
			u.inBytes, _ = strconv.ParseFloat(v, 64)
		}
	}
	return u
}

func reportUsage(b *testing.B, before, after redisUsage, events int) {
	n := float64(events)
	b.ReportMetric((after.commands-before.commands)/n, "redis-cmds/event")
	b.ReportMetric((after.cpu-before.cpu)/n*1e6, "redis-cpu-µs/event")
	b.ReportMetric((after.inBytes-before.inBytes)/n, "redis-bytes/event")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/event")
	b.ReportMetric((after.clientCPU-before.clientCPU)/n*1e9, "client-cpu-ns/event")
}

// BenchmarkAggregatorVsNaive runs the aggregator's apply and flush against
// the naive design (for every event, pipelined: PFADD and INCR of its hour
// and day keys) on a Redis of its own, and reports Redis commands, Redis CPU
// and bytes sent per event, and time per event on the client. A third run,
// guard-floor, measures the least any design that writes each record with a
// guarded one-key script at this freshness can cost Redis, and a fourth,
// partition-floor, the same for a record per events partition and day.
func BenchmarkAggregatorVsNaive(b *testing.B) {
	pr := pipetest.StartPrivateRedis(b)
	rdb := redis.NewClient(&redis.Options{Addr: pr.Addr()})
	cc := &cmdCounter{}
	rdb.AddHook(cc)
	b.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()

	b.Run("aggregator", func(b *testing.B) {
		events := benchEvents(b.N * benchChunk)
		// A fresh prefix per run: a rerun over the same keys would skip every
		// event as already counted and measure nothing.
		store := hllstore.New(rdb, hllstore.Config{Prefix: "bench" + strconv.FormatInt(time.Now().UnixNano(), 36)})
		cfg := DefaultConfig()
		a, err := New(cfg, nil, nil, nil, store, Outputs{})
		if err != nil {
			b.Fatal(err)
		}
		var flushes time.Duration
		nflush := 0
		before := readUsage(b, rdb, cc)
		b.ResetTimer()
		for i := range b.N {
			if err := a.apply(ctx, events[i*benchChunk:(i+1)*benchChunk]); err != nil {
				b.Fatal(err)
			}
			if (i+1)%benchFlushEvery == 0 || i == b.N-1 {
				t := time.Now()
				// The default cadences: records every second, details
				// every 10 s. Run with -benchtime 500x so the stream is
				// 10 flushes long and its last flush is the one detail flush.
				if err := a.flush(ctx, (i+1)%(benchFlushEvery*benchDetailEvery) == 0 || i == b.N-1); err != nil {
					b.Fatal(err)
				}
				flushes += time.Since(t)
				nflush++
			}
		}
		b.StopTimer()
		reportUsage(b, before, readUsage(b, rdb, cc), b.N*benchChunk)
		logCommandStats(b, rdb)
		b.ReportMetric(float64(flushes.Milliseconds())/float64(nflush), "ms/flush")
		b.ReportMetric(float64(a.records), "records")
	})

	b.Run("naive", func(b *testing.B) {
		events := benchEvents(b.N * benchChunk)
		prefix := "naive" + strconv.FormatInt(time.Now().UnixNano(), 36)
		var vk [8]byte
		before := readUsage(b, rdb, cc)
		b.ResetTimer()
		for i := range b.N {
			pipe := rdb.Pipeline()
			for _, ev := range events[i*benchChunk : (i+1)*benchChunk] {
				t := time.UnixMilli(ev.GetOrigin().GetReceivedAtMs()).UTC()
				day := prefix + ":" + ev.GetContentId() + ":d:" + t.Format("20060102")
				hour := prefix + ":" + ev.GetContentId() + ":h:" + t.Format("2006010215")
				putUint64(vk[:], ev.GetVisitorKey())
				pipe.PFAdd(ctx, day+":u", vk[:])
				pipe.PFAdd(ctx, hour+":u", vk[:])
				pipe.Incr(ctx, day+":n")
				pipe.Incr(ctx, hour+":n")
			}
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		reportUsage(b, before, readUsage(b, rdb, cc), b.N*benchChunk)
		logCommandStats(b, rdb)
	})

	b.Run("guard-floor", func(b *testing.B) { benchmarkGuardFloor(b, rdb, cc) })
	b.Run("partition-floor", func(b *testing.B) { benchmarkPartitionFloor(b, rdb, cc) })
}

// floorScript is the least a guarded one-key write can do: read the
// record's version, refuse if it moved, write the version and the
// field/value pairs of ARGV[2..]. No positions, no sketches, no expiry.
var floorScript = redis.NewScript(`
if (tonumber(redis.call('HGET', KEYS[1], 'ver')) or 0) ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'ver', ARGV[1] + 1, unpack(ARGV, 2))
return 1
`)

// benchmarkGuardFloor is the floor of every design that writes each record
// (a content id's day) with a guarded one-key script at the default
// freshness: at every flush, one floorScript call per content id and day
// that got events since the previous flush, pipelined, writing one number,
// and nothing else (no PFADD, no INCR: the counts themselves are not even
// kept). Its Redis CPU per event bounds from below what any such design
// costs on this workload; the aggregator's writes carry more (positions,
// sketches, hours, breakdowns).
func benchmarkGuardFloor(b *testing.B, rdb *redis.Client, cc *cmdCounter) {
	benchmarkFloor(b, rdb, cc,
		func(prefix, content, day string) string { return "{" + prefix + ":" + content + ":" + day + "}:d" },
		func(args []any, contents map[string]int) []any {
			n := 0
			for _, c := range contents {
				n += c
			}
			return append(args, "n", n)
		})
}

// benchmarkPartitionFloor is the floor of a design whose record is one
// events partition's day (every content id of the partition in one hash,
// one position guard), with the aggregator's write volume: at every flush,
// one guarded call per partition and day that got events, carrying for each
// dirty content id of it a value of the bytes per dirty content id the
// aggregator sends (≈ 1 KiB: 110 B per event, ≈ 9 events per dirty id).
// Content ids map to partitions as the events topic's key would.
func benchmarkPartitionFloor(b *testing.B, rdb *redis.Client, cc *cmdCounter) {
	const partitions = 6
	value := strings.Repeat("v", 1000)
	benchmarkFloor(b, rdb, cc,
		func(prefix, content, day string) string {
			return "{" + prefix + ":" + strconv.FormatUint(fnv64(content)%partitions, 10) + ":" + day + "}:p"
		},
		func(args []any, contents map[string]int) []any {
			for c := range contents {
				args = append(args, c, value)
			}
			return args
		})
}

// benchmarkFloor runs a floor design over the benchmark's events: recordOf
// names the record an event's content id and day go to, fields the
// field/value arguments a flush writes into a record for the content ids
// (with their events) that changed it. Every flush is one floorScript call
// per changed record, pipelined.
func benchmarkFloor(b *testing.B, rdb *redis.Client, cc *cmdCounter,
	recordOf func(prefix, content, day string) string, fields func(args []any, contents map[string]int) []any) {
	ctx := context.Background()
	if err := floorScript.Load(ctx, rdb).Err(); err != nil {
		b.Fatal(err)
	}
	events := benchEvents(b.N * benchChunk)
	prefix := "floor" + strconv.FormatInt(time.Now().UnixNano(), 36)
	version := map[string]int{}
	dirty := map[string]map[string]int{} // record -> content id -> events
	flush := func() {
		pipe := rdb.Pipeline()
		for key, contents := range dirty {
			floorScript.EvalSha(ctx, pipe, []string{key}, fields([]any{version[key]}, contents)...)
			version[key]++
		}
		cmds, err := pipe.Exec(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range cmds {
			if v, _ := c.(*redis.Cmd).Int(); v != 1 {
				b.Fatalf("floor script refused a write: %v", c)
			}
		}
		clear(dirty)
	}
	before := readUsage(b, rdb, cc)
	b.ResetTimer()
	for i := range b.N {
		for _, ev := range events[i*benchChunk : (i+1)*benchChunk] {
			day := time.UnixMilli(ev.GetOrigin().GetReceivedAtMs()).UTC().Format("20060102")
			key := recordOf(prefix, ev.GetContentId(), day)
			if dirty[key] == nil {
				dirty[key] = map[string]int{}
			}
			dirty[key][ev.GetContentId()]++
		}
		if (i+1)%benchFlushEvery == 0 || i == b.N-1 {
			flush()
		}
	}
	b.StopTimer()
	reportUsage(b, before, readUsage(b, rdb, cc), b.N*benchChunk)
	b.ReportMetric(float64(len(version)), "records")
	logCommandStats(b, rdb)
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// logCommandStats logs where the Redis time went (INFO commandstats), then
// resets the statistics for the next run.
func logCommandStats(b *testing.B, rdb *redis.Client) {
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("redis commandstats:\n%s", strings.TrimSpace(info))
	if err := rdb.ConfigResetStat(context.Background()).Err(); err != nil {
		b.Fatal(err)
	}
}

func putUint64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
}

// BenchmarkSketchMemory reports the heap held by one sketch of n visitors.
func BenchmarkSketchMemory(b *testing.B) {
	for _, n := range []int{10, 1_000, 10_000, 100_000} {
		b.Run(fmt.Sprint("visitors=", n), func(b *testing.B) {
			const sketches = 50
			for range b.N {
				runtime.GC()
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				held := make([]*hllstore.Record, sketches)
				for i := range held {
					r := hllstore.NewRecord()
					for v := range n {
						r.Sketch.InsertHash(mixKey(uint64(i*n + v)))
					}
					r.Sketch.Estimate() // compact sparse state as a flush would
					held[i] = &r
				}
				runtime.GC()
				runtime.ReadMemStats(&m1)
				b.ReportMetric(math.Max(0, float64(m1.HeapAlloc)-float64(m0.HeapAlloc))/sketches, "bytes/sketch")
				runtime.KeepAlive(held)
			}
		})
	}
}
