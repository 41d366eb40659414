//go:build integration

package aggregator

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Benchmarks for capacity planning (BENCHMARKS.md, "Capacity figures";
// deploy/k8s/README.md, "Capacity plan"): what one content id costs in an
// aggregator's heap and in Redis, and what a hot content id costs per event.

// capacityCase is a shape of traffic: contents content ids with visitors
// visitors each per UTC day, on 7 days of one week.
type capacityCase struct{ visitors, contents int }

// capacityCases keep each case near 700,000 events over the week (the
// first: 280,000), with enough content ids for the per-key costs of the
// small shapes to average out (a group's hashes are shared by its content
// ids: see benchmarkContentMemory on their encoding).
var capacityCases = []capacityCase{
	{visitors: 1, contents: 40_000},
	{visitors: 10, contents: 10_000},
	{visitors: 100, contents: 1_000},
	{visitors: 1_000, contents: 100},
	{visitors: 10_000, contents: 10},
	{visitors: 100_000, contents: 1},
}

const capacityDays = 7

// Breakdown values of the memory workload, the first of each list the most
// frequent (see capacityEvents).
var (
	capCountries = []string{"DE", "US", "FR", "GB", "NL", "IT", "ES", "PL", "AT", "CH", "BE", "SE", "DK", "NO", "FI", "IE", "PT", "CZ", "CA", "BR"}
	capDevices   = []string{"desktop", "mobile", "tablet"}
	capBrowsers  = []string{"Chrome", "Safari", "Firefox", "Edge", "Samsung Internet", "Opera"}
	capOSes      = []string{"Windows", "iOS", "Android", "macOS", "Linux", "ChromeOS"}
	capMedia     = []string{"direct", "search", "social", "email", "referral"}
	capDomains   = []string{"google.com", "bing.com", "facebook.com", "t.co", "linkedin.com", "reddit.com", "news.ycombinator.com", "duckduckgo.com",
		"instagram.com", "youtube.com", "mail.google.com", "outlook.live.com", "example.org", "example.net", "wikipedia.org", "medium.com",
		"flipboard.com", "pinterest.com", "yahoo.com", "ecosia.org"}
	capUTMSources   = []string{"newsletter", "facebook", "twitter", "linkedin", "partner"}
	capUTMMedia     = []string{"email", "social", "cpc", "referral", "display"}
	capUTMCampaigns = []string{"spring-sale", "weekly-digest", "launch", "retargeting", "brand"}
)

// skewed picks an element of vals, the first ones more often (index
// ⌊u²·n⌋ for a uniform u).
func skewed(rng *rand.Rand, vals []string) string {
	u := rng.Float64()
	return vals[int(u*u*float64(len(vals)))]
}

// capacityEvents calls emit with chunks of the events of one day of a
// capacityCase: every visitor of every content id views it once, at a
// random time of the day; 10 % of them are bots (reason known_crawler),
// the others humans with a country, device, browser, OS and traffic
// source (20 values at most each, skewed), a page path of the content id
// (a session's first view: its landing page too), and on 20 % of them UTM
// tags whose campaign is the event's campaign. Visitors differ from day
// to day. offsets holds the next offset of each of 6 source partitions.
func capacityEvents(c capacityCase, day int, dayStart int64, offsets []int64, emit func([]*pixelpb.Event)) {
	rng := rand.New(rand.NewPCG(uint64(c.visitors), uint64(day)))
	chunk := make([]*pixelpb.Event, 0, applyChunk)
	for v := range c.visitors {
		for cid := range c.contents {
			p := rng.IntN(len(offsets))
			offsets[p]++
			ev := &pixelpb.Event{
				ContentId:  "article-" + strconv.Itoa(cid),
				Kind:       pixelpb.Kind_KIND_VIEW,
				Origin:     &pixelpb.Origin{ReceivedAtMs: dayStart + rng.Int64N(hllstore.DayMs)},
				Source:     &pixelpb.SourcePosition{Partition: int32(p), Offset: offsets[p]},
				VisitorKey: mixKey(uint64(day)<<48 | uint64(cid)<<24 | uint64(v)),
				SessionSeq: 1,
				PageUrl:    "https://news.example.com/articles/" + strconv.Itoa(cid) + "?ref=home",
			}
			if rng.IntN(10) == 0 {
				ev.Bot, ev.BotReasons = true, []string{"known_crawler"}
			} else {
				ev.Country, ev.DeviceType = skewed(rng, capCountries), skewed(rng, capDevices)
				ev.Browser, ev.Os = skewed(rng, capBrowsers), skewed(rng, capOSes)
				ev.ReferrerMedium = skewed(rng, capMedia)
				if ev.ReferrerMedium != "direct" {
					ev.ReferrerDomain = skewed(rng, capDomains)
				}
				if rng.IntN(5) == 0 {
					ev.UtmSource, ev.UtmMedium = skewed(rng, capUTMSources), skewed(rng, capUTMMedia)
					ev.UtmCampaign = skewed(rng, capUTMCampaigns)
					ev.CampaignId = ev.UtmCampaign
				}
			}
			chunk = append(chunk, ev)
			if len(chunk) == cap(chunk) {
				emit(chunk)
				chunk = make([]*pixelpb.Event, 0, applyChunk)
			}
		}
	}
	if len(chunk) > 0 {
		emit(chunk)
	}
}

// liveHeap returns the bytes of live heap objects after two collections
// (the second frees what sync.Pool's victim cache kept through the first).
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkContentMemory measures, for each capacityCase, on a private
// redis-server (append-only file on, as in production):
//
//   - heap-bytes/content-id-day: the aggregator's heap per content id day it
//     holds, as apply and flush built it through the day (an aggregator
//     holds a content id's day from its first event until it has been idle
//     for -aggregator.idleEvict, 10 min);
//   - loaded-heap-bytes/content-id-day: the same day loaded from Redis by a
//     new aggregator (after a restart, a rebalance or an eviction);
//   - redis-bytes/content-id-day: Redis memory (MEMORY USAGE, exact) of the
//     keys kept for -aggregator.dayRetention (400 days): day records,
//     breakdowns, the day and campaign indexes and the top-N sets, per
//     content id and day; hour-bytes/content-id-day the hour records, kept
//     for -aggregator.hourRetention (35 days); rollup-bytes/content-id-week
//     a week rollup (built by the rollup job, kept as long as its last day);
//   - used-memory-bytes/content-id-day: the server's used_memory growth over
//     the 7 days' writes (hour records and Redis's own overhead included, no
//     rollups), and aof-bytes/content-id-day the append-only file after a
//     rewrite (its RDB preamble) with the rollups.
//
// Run with -benchtime 1x: one iteration is the whole measurement.
func BenchmarkContentMemory(b *testing.B) {
	for _, c := range capacityCases {
		b.Run(fmt.Sprintf("visitors=%d/contents=%d", c.visitors, c.contents), func(b *testing.B) {
			for range b.N {
				benchmarkContentMemory(b, c)
			}
		})
	}
}

func benchmarkContentMemory(b *testing.B, c capacityCase) {
	pr := pipetest.StartPrivateRedis(b)
	rdb := redis.NewClient(&redis.Options{Addr: pr.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	const prefix = "cap"
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	cfg := DefaultConfig()
	week := hllstore.WeekStart(time.Now().Add(-21 * 24 * time.Hour).UnixMilli())
	offsets := make([]int64, 6)

	// Connections and buffers of the client and the store exist before
	// the first measurement (a throwaway aggregator on other keys).
	{
		warm, err := New(cfg, nil, nil, nil, hllstore.New(rdb, hllstore.Config{Prefix: "warm"}), Outputs{})
		if err != nil {
			b.Fatal(err)
		}
		capacityEvents(capacityCase{visitors: 1, contents: 2000}, 0, week, make([]int64, 6), func(evs []*pixelpb.Event) {
			if err := warm.apply(ctx, evs); err != nil {
				b.Fatal(err)
			}
		})
		if err := warm.flush(ctx, true); err != nil {
			b.Fatal(err)
		}
		if err := rdb.Del(ctx, pipetest.RedisKeys(b, rdb, "warm:*")...).Err(); err != nil {
			b.Fatal(err)
		}
	}
	// A group's hashes hold every content id of its group and day: in a
	// deployment with thousands of content ids per group, more fields than
	// Redis keeps in its compact listpack encoding (hash-max-listpack-entries,
	// 512 by default). So the group hashes are made hash tables from the
	// start here, whatever the case's number of content ids; the week
	// rollups, one hash per content id, are built with the default.
	listpack, err := rdb.ConfigGet(ctx, "hash-max-listpack-entries").Result()
	if err != nil || listpack["hash-max-listpack-entries"] == "" {
		b.Fatalf("CONFIG GET hash-max-listpack-entries: %v %v", listpack, err)
	}
	setListpackEntries := func(n string) {
		if err := rdb.ConfigSet(ctx, "hash-max-listpack-entries", n).Err(); err != nil {
			b.Fatal(err)
		}
	}
	setListpackEntries("0")
	usedBefore := pipetest.RedisInfoField(b, rdb, "memory", "used_memory")

	// Each day is applied and flushed by an aggregator of its own, at the
	// default cadences (records every 50,000 events, details every tenth
	// flush and at the end), so the process holds one day at a time. The
	// first day's aggregator is measured.
	var heapPerDay, recordsPerDay float64
	for day := range capacityDays {
		dayStart := week + int64(day)*hllstore.DayMs
		before := liveHeap()
		a, err := New(cfg, nil, nil, nil, store, Outputs{})
		if err != nil {
			b.Fatal(err)
		}
		applied, flushes := 0, 0
		capacityEvents(c, day, dayStart, offsets, func(evs []*pixelpb.Event) {
			if err := a.apply(ctx, evs); err != nil {
				b.Fatal(err)
			}
			applied += len(evs)
			if applied >= cfg.MaxBatch {
				flushes++
				if err := a.flush(ctx, flushes%10 == 0); err != nil {
					b.Fatal(err)
				}
				applied = 0
			}
		})
		if err := a.flush(ctx, true); err != nil {
			b.Fatal(err)
		}
		if a.stale || len(a.days) != c.contents {
			b.Fatalf("day %d: stale %v, %d days held, want %d", day, a.stale, len(a.days), c.contents)
		}
		if day == 0 {
			heapPerDay = float64(liveHeap()-before) / float64(c.contents)
			recordsPerDay = float64(a.records) / float64(c.contents)
		}
		runtime.KeepAlive(a)
	}
	usedAfter := pipetest.RedisInfoField(b, rdb, "memory", "used_memory")

	// The first day again, loaded from Redis by a new aggregator: one more
	// event per content id (a later offset) makes it load each day.
	before := liveHeap()
	loaded, err := New(cfg, nil, nil, nil, store, Outputs{})
	if err != nil {
		b.Fatal(err)
	}
	more := make([]*pixelpb.Event, 0, c.contents)
	for cid := range c.contents {
		offsets[0]++
		more = append(more, &pixelpb.Event{
			ContentId: "article-" + strconv.Itoa(cid), Kind: pixelpb.Kind_KIND_VIEW,
			Origin:     &pixelpb.Origin{ReceivedAtMs: week + 1000},
			Source:     &pixelpb.SourcePosition{Partition: 0, Offset: offsets[0]},
			VisitorKey: mixKey(uint64(cid)), SessionSeq: 1,
		})
	}
	for i := 0; i < len(more); i += applyChunk {
		if err := loaded.apply(ctx, more[i:min(i+applyChunk, len(more))]); err != nil {
			b.Fatal(err)
		}
	}
	more = nil
	loadedHeap := float64(liveHeap()-before) / float64(c.contents)
	runtime.KeepAlive(loaded)

	// The week rollups, as the rollup job builds them.
	setListpackEntries(listpack["hash-max-listpack-entries"])
	ids := make([]string, c.contents)
	for cid := range ids {
		ids[cid] = "article-" + strconv.Itoa(cid)
	}
	for i := 0; i < len(ids); i += 500 {
		if _, err := store.BuildWeek(ctx, ids[i:min(i+500, len(ids))], week); err != nil {
			b.Fatal(err)
		}
	}

	// Redis memory by kind of key.
	byKind := map[string]float64{}
	encodings := map[string]int{}
	fields := map[string]int64{}
	for _, k := range pipetest.RedisKeys(b, rdb, prefix+":*") {
		n, err := rdb.MemoryUsage(ctx, k, 0).Result()
		if err != nil {
			b.Fatal(err)
		}
		kind := capacityKeyKind(prefix, k)
		byKind[kind] += float64(n)
		if kind == "day" || kind == "hour" || kind == "breakdown" || kind == "rollup" {
			enc, err := rdb.ObjectEncoding(ctx, k).Result()
			if err != nil {
				b.Fatal(err)
			}
			encodings[kind+"/"+enc]++
		}
		if kind != "index" && kind != "top" {
			n, err := rdb.HLen(ctx, k).Result()
			if err != nil {
				b.Fatal(err)
			}
			fields[kind] += n
		}
	}
	b.Logf("redis bytes by kind of key: %v; hash encodings: %v; hash fields: %v", byKind, encodings, fields)

	// The append-only file after a rewrite (once any automatic one ended).
	rewriting := func() bool {
		return pipetest.RedisInfoField(b, rdb, "persistence", "aof_rewrite_in_progress") != 0 ||
			pipetest.RedisInfoField(b, rdb, "persistence", "aof_rewrite_scheduled") != 0
	}
	for rewriting() {
		time.Sleep(50 * time.Millisecond)
	}
	if err := rdb.BgRewriteAOF(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	for rewriting() {
		time.Sleep(50 * time.Millisecond)
	}
	aof := pipetest.RedisInfoField(b, rdb, "persistence", "aof_current_size")

	days := float64(c.contents * capacityDays)
	b.ReportMetric(heapPerDay, "heap-bytes/content-id-day")
	b.ReportMetric(loadedHeap, "loaded-heap-bytes/content-id-day")
	b.ReportMetric(recordsPerDay, "records/content-id-day")
	b.ReportMetric((byKind["day"]+byKind["breakdown"]+byKind["index"]+byKind["top"]+byKind["orders"])/days, "redis-bytes/content-id-day")
	b.ReportMetric(byKind["hour"]/days, "hour-bytes/content-id-day")
	b.ReportMetric(byKind["rollup"]/float64(c.contents), "rollup-bytes/content-id-week")
	b.ReportMetric((usedAfter-usedBefore)/days, "used-memory-bytes/content-id-day")
	b.ReportMetric(aof/days, "aof-bytes/content-id-day")
}

// capacityKeyKind names the kind of a count key (hllstore's layout).
func capacityKeyKind(prefix, k string) string {
	switch {
	case strings.HasPrefix(k, prefix+":c:") && strings.HasSuffix(k, "}:w"):
		return "rollup"
	case strings.HasPrefix(k, prefix+":c:") && strings.HasSuffix(k, ":o"):
		return "orders"
	case strings.HasPrefix(k, prefix+":c:") && strings.HasSuffix(k, "}:d"):
		return "day"
	case strings.HasPrefix(k, prefix+":c:") && strings.HasSuffix(k, "}:h"):
		return "hour"
	case strings.HasPrefix(k, prefix+":c:") && strings.HasSuffix(k, "}:b"):
		return "breakdown"
	case strings.HasPrefix(k, prefix+":ci:"), strings.HasPrefix(k, prefix+":gi:"):
		return "index"
	case strings.HasPrefix(k, prefix+":top:"):
		return "top"
	}
	return "other"
}

// BenchmarkHotContent runs the aggregator's apply and flush, as
// BenchmarkAggregatorVsNaive/aggregator does (chunks of 1,000 events, a
// flush every 50,000, every tenth a detail flush; run with -benchtime
// 500x), on two workloads in the same run: every event on one content id
// (hot), and the Zipf-popular 10,000 content ids of the other aggregator
// benchmarks (zipf). Events of one content id all go to one partition of
// pixel.events.v1, so to one aggregator: what one event of a hot content id
// costs that aggregator, against one of the usual mix, is what bounds the
// rate of one content id (deploy/k8s/README.md, "Capacity plan").
func BenchmarkHotContent(b *testing.B) {
	pr := pipetest.StartPrivateRedis(b)
	rdb := redis.NewClient(&redis.Options{Addr: pr.Addr()})
	cc := &cmdCounter{}
	rdb.AddHook(cc)
	b.Cleanup(func() { _ = rdb.Close() })
	for _, w := range []struct {
		name string
		hot  bool
	}{{"hot", true}, {"zipf", false}} {
		b.Run(w.name, func(b *testing.B) {
			ctx := context.Background()
			events := benchEvents(b.N * benchChunk)
			if w.hot {
				for _, ev := range events {
					ev.ContentId = "hot"
				}
			}
			store := hllstore.New(rdb, hllstore.Config{Prefix: "hot" + strconv.FormatInt(time.Now().UnixNano(), 36)})
			a, err := New(DefaultConfig(), nil, nil, nil, store, Outputs{})
			if err != nil {
				b.Fatal(err)
			}
			before := readUsage(b, rdb, cc)
			b.ResetTimer()
			for i := range b.N {
				if err := a.apply(ctx, events[i*benchChunk:(i+1)*benchChunk]); err != nil {
					b.Fatal(err)
				}
				if (i+1)%benchFlushEvery == 0 || i == b.N-1 {
					if err := a.flush(ctx, (i+1)%(benchFlushEvery*benchDetailEvery) == 0 || i == b.N-1); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			reportUsage(b, before, readUsage(b, rdb, cc), b.N*benchChunk)
			if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
