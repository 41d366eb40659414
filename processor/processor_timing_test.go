//go:build integration

package processor

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/pii"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/internal/visitor"
	"github.com/pixelpipe/pixelpipe/processor/device"
	"github.com/pixelpipe/pixelpipe/processor/session"
	"github.com/pixelpipe/pixelpipe/processor/state"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// benchUAs are real user agents of the common families; traffic repeats a
// few hundred agents, which is what the cache relies on.
var benchUAs = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.6723.102 Mobile Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:132.0) Gecko/20100101 Firefox/132.0",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
	"Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
	"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
}

var benchRefs = []string{"", "", "https://www.google.com/", "https://t.co/abc", "https://news.example/home", "https://mail.google.com/mail/u/0/"}

// benchBatches returns batches of encoded hits from visitors (each with its
// own minor user-agent version, so about visitors/8 distinct agents), with
// fresh event ids, consecutive offsets and advancing event times.
func benchBatches(nBatches, size, visitors int) [][]kafka.Message {
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([][]kafka.Message, nBatches)
	at := int64(1_764_331_200_000)
	off := int64(0)
	for b := range out {
		batch := make([]kafka.Message, size)
		for i := range batch {
			v := rng.IntN(visitors)
			at += 10
			h := &pixelpb.RawHit{
				SchemaVersion: schemas.RawHitVersion,
				Origin:        &pixelpb.Origin{EventId: make([]byte, 16), ReceivedAtMs: at, NodeId: "bench", Seq: uint64(off)},
				Kind:          pixelpb.Kind_KIND_VIEW, ContentId: fmt.Sprintf("article-%d", rng.IntN(500)), SiteId: "news",
				ClientIp:  []byte{byte(80 + v%40), byte(v >> 8), byte(v), 7},
				UserAgent: benchUAs[v%len(benchUAs)] + fmt.Sprintf(" v/%d", v%(max(visitors/8, 1))),
				PageUrl:   fmt.Sprintf("https://news.example/article-%d?utm_source=nl&utm_medium=email&utm_campaign=c%d", rng.IntN(500), v%7),
				Referrer:  benchRefs[v%len(benchRefs)],
				CookieId:  fmt.Sprintf("c-%d", v),
				PresentHeaders: schemas.HeaderAccept | schemas.HeaderAcceptLanguage | schemas.HeaderAcceptEncoding |
					schemas.HeaderSecFetchMode,
			}
			binary.BigEndian.PutUint64(h.Origin.EventId, rng.Uint64())
			binary.BigEndian.PutUint64(h.Origin.EventId[8:], rng.Uint64())
			val, _ := proto.Marshal(h)
			batch[i] = kafka.Message{Topic: "hits", Partition: 0, Offset: off, Value: val}
			off++
		}
		out[b] = batch
	}
	return out
}

func benchProcessor(b *testing.B, store *state.Store) *Processor {
	b.Helper()
	cfg := DefaultConfig()
	cfg.VisitorSecret = "s"
	p, err := New(cfg, nil, prometheus.NewRegistry(), Deps{State: store, Hits: noHistory{}})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

const benchBatch = 1000

// BenchmarkTransform measures the processor's work per hit: decode,
// validate, visitor key, dedupe, session, geo (built-in country table), user
// agent, traffic source, PII redaction, bot labels, encode. Warm: the visitors
// have state and the user agents are cached. Cold: a new processor per batch,
// so every visitor is new to it and every user agent is parsed. Reference: what the processor did before enrichment (decode,
// validate, key, encode the base event), in the same run.
func BenchmarkTransform(b *testing.B) {
	rdb, prefix := pipetest.Redis(b)
	store := state.New(rdb, prefix, time.Hour)
	const visitors = 20_000
	batches := benchBatches(64, benchBatch, visitors)

	b.Run("reference", func(b *testing.B) {
		keyer := visitor.NewKeyer("s")
		var hit pixelpb.RawHit
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			m := &batches[i/benchBatch%len(batches)][i%benchBatch]
			hit.Reset()
			if err := proto.Unmarshal(m.Value, &hit); err != nil || validate(&hit) != "" {
				b.Fatal("bad hit")
			}
			key, src := keyer.Key(hit.GetOrigin().GetReceivedAtMs(), []byte(hit.GetSiteId()), []byte(hit.GetUserId()),
				[]byte(hit.GetCookieId()), hit.GetClientIp(), []byte(hit.GetUserAgent()))
			ev := &pixelpb.Event{
				SchemaVersion: schemas.EventVersion, Origin: hit.GetOrigin(),
				Source: &pixelpb.SourcePosition{Partition: int32(m.Partition), Offset: m.Offset},
				Kind:   hit.GetKind(), ContentId: hit.GetContentId(), SiteId: hit.GetSiteId(), VisitorKey: key, IdentitySource: src,
				PageUrl: hit.GetPageUrl(), Referrer: hit.GetReferrer(), IpTruncated: pii.TruncateIP(hit.GetClientIp()),
			}
			sinkBytes, _ = proto.Marshal(ev)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})

	b.Run("warm", func(b *testing.B) {
		p := benchProcessor(b, store)
		// Warm up: every visitor and agent seen once, and the offsets run on
		// from there.
		warm := benchBatches(1, 3*visitors, visitors)[0]
		for i := 0; i < len(warm); i += benchBatch {
			if err := p.transform(context.Background(), warm[i:i+benchBatch]); err != nil {
				b.Fatal(err)
			}
		}
		next := warm[len(warm)-1].Offset + 1
		shifted := make([][]kafka.Message, len(batches))
		for j := range batches {
			shifted[j] = make([]kafka.Message, benchBatch)
			for i := range batches[j] {
				shifted[j][i] = batches[j][i]
				shifted[j][i].Offset = next
				next++
			}
		}
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			j := n % len(shifted)
			if err := p.transform(context.Background(), shifted[j]); err != nil {
				b.Fatal(err)
			}
			if j == len(shifted)-1 {
				// Another lap over the same hits: new offsets, new ids.
				b.StopTimer()
				for k := range shifted {
					for i := range shifted[k] {
						shifted[k][i].Offset = next
						next++
						// Bump the event id inside the encoded origin so lap
						// two is not dropped as duplicates.
						shifted[k][i].Value = bumpEventID(shifted[k][i].Value, uint64(n))
					}
				}
				b.StartTimer()
			}
			n++
		}
		b.ReportMetric(float64(n*benchBatch)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*benchBatch), "ns/event")
	})

	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			b.StopTimer()
			p := benchProcessor(b, state.New(rdb, fmt.Sprintf("%s:cold%d", prefix, n), time.Hour))
			b.StartTimer()
			if err := p.transform(context.Background(), batches[n%len(batches)]); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(n*benchBatch)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*benchBatch), "ns/event")
	})
}

func bumpEventID(v []byte, n uint64) []byte {
	var h pixelpb.RawHit
	if err := proto.Unmarshal(v, &h); err != nil {
		panic(err)
	}
	binary.BigEndian.PutUint64(h.Origin.EventId, binary.BigEndian.Uint64(h.Origin.EventId)^(n+1)*0x9e3779b97f4a7c15)
	out, _ := proto.Marshal(&h)
	return out
}

var sinkBytes []byte

// BenchmarkUserAgent compares the parser alone with the cached parser on
// agents that repeat, in the same run.
func BenchmarkUserAgent(b *testing.B) {
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			sinkDevice = device.Parse(benchUAs[i%len(benchUAs)])
		}
	})
	b.Run("cached", func(b *testing.B) {
		p := device.NewParser(1000, nil)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			sinkDevice = p.Parse(benchUAs[i%len(benchUAs)])
		}
	})
}

var sinkDevice device.Device

// BenchmarkSessionMemory reports the heap held per active visitor with an
// open session: the in-memory state (map entry, session, remembered ids)
// and the partition's open-session index.
func BenchmarkSessionMemory(b *testing.B) {
	const n = 50_000
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		cfg := DefaultConfig()
		p := &Processor{cfg: cfg}
		c := cfg.Session
		states := make(map[uint64]*session.State, n)
		open := make(map[uint64]int64, n)
		for v := range uint64(n) {
			st := &session.State{Visitor: v}
			for k := range 3 {
				h := &session.Hit{AtMs: 1_764_331_200_000 + int64(k)*60_000, Site: "news", Page: "https://news.example/article-123?utm_source=nl", Referrer: "https://www.google.com/", IsPage: true}
				binary.BigEndian.PutUint64(h.EventID[:], v<<8|uint64(k))
				c.Apply(st, h)
			}
			states[v] = st
			open[v] = st.Open.LastMs
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/session")
		runtime.KeepAlive(states)
		runtime.KeepAlive(open)
		_ = p
	}
}

// BenchmarkLag measures the lag the processor adds on real Kafka and Redis:
// hits are produced at 2000/s with their receive time set when produced,
// and the processor's pixel_processor_event_lag_seconds (receive time to
// Kafka acknowledging the event) is read back: mean and the upper bound of
// the 99th-percentile bucket. Each iteration is 1000 hits.
func BenchmarkLag(b *testing.B) {
	kc, topics := pipetest.Kafka(b)
	rdb, prefix := pipetest.Redis(b)
	cfg := DefaultConfig()
	cfg.VisitorSecret = "s"
	cfg.HitsTopic, cfg.EventsTopic, cfg.SessionsTopic, cfg.DLQTopic = topics.Hits, topics.Events, topics.Sessions, topics.DLQ
	reg := prometheus.NewRegistry()
	p, err := New(cfg, nil, reg, Deps{
		Reader:   kafkaconn.NewGroupReader(kc, cfg.HitsTopic, cfg.Group, nil),
		Events:   kafkaconn.NewProducer(kc, cfg.EventsTopic),
		Sessions: kafkaconn.NewProducer(kc, cfg.SessionsTopic),
		DLQ:      kafkaconn.NewProducer(kc, cfg.DLQTopic),
		State:    state.New(rdb, prefix, time.Hour),
		Hits:     kafkaconn.NewRanges(kc, cfg.HitsTopic, nil),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()

	w := kafkaconn.NewWriter(kc, topics.Hits, nil)
	w.BatchTimeout = 2 * time.Millisecond
	w.BatchSize = 10
	defer w.Close()
	keyer := visitor.NewKeyer("s")
	rng := rand.New(rand.NewPCG(3, 4))
	sent := 0
	for b.Loop() {
		tick := time.NewTicker(5 * time.Millisecond) // 10 hits per tick: 2000/s
		for range 100 {
			<-tick.C
			msgs := make([]kafka.Message, 10)
			for i := range msgs {
				now := time.Now().UnixMilli()
				v := rng.IntN(5000)
				h := &pixelpb.RawHit{
					SchemaVersion: schemas.RawHitVersion,
					Origin:        &pixelpb.Origin{EventId: make([]byte, 16), ReceivedAtMs: now, NodeId: "lag"},
					Kind:          pixelpb.Kind_KIND_VIEW, ContentId: fmt.Sprintf("a-%d", v%50), SiteId: "news",
					ClientIp: []byte{81, 2, byte(v >> 8), byte(v)}, UserAgent: benchUAs[v%len(benchUAs)], UserId: fmt.Sprint(v),
				}
				binary.BigEndian.PutUint64(h.Origin.EventId, rng.Uint64())
				binary.BigEndian.PutUint64(h.Origin.EventId[8:], rng.Uint64())
				val, _ := proto.Marshal(h)
				key, _ := keyer.Key(now, []byte("news"), []byte(h.UserId), nil, h.ClientIp, []byte(h.UserAgent))
				msgs[i] = kafka.Message{Key: schemas.AppendVisitorPartitionKey(nil, key), Value: val}
			}
			if err := w.WriteMessages(context.Background(), msgs...); err != nil {
				b.Fatal(err)
			}
		}
		tick.Stop()
		sent += 1000
		pipetest.Eventually(b, time.Minute, func() string {
			if n := testutil.ToFloat64(p.m.events); int(n) < sent {
				return fmt.Sprintf("%v of %d events", n, sent)
			}
			return ""
		})
	}
	var m dto.Metric
	if err := p.m.lag.Write(&m); err != nil {
		b.Fatal(err)
	}
	h := m.GetHistogram()
	b.ReportMetric(1000*h.GetSampleSum()/float64(h.GetSampleCount()), "ms-mean")
	for _, bk := range h.GetBucket() {
		if float64(bk.GetCumulativeCount()) >= 0.99*float64(h.GetSampleCount()) {
			b.ReportMetric(1000*bk.GetUpperBound(), "ms-p99≤")
			break
		}
	}
}

// BenchmarkRecovery measures what bounds a processor's start on a
// partition: restore (a hit replayed to rebuild state: decode, visitor key,
// dedupe, session, and the bot labels a session's class needs; no geo,
// sources or records), next to the live transform
// of the same hits in the same run; and a base snapshot of a partition of
// 20,000 visitors written to the real Redis (bytes per visitor, time).
func BenchmarkRecovery(b *testing.B) {
	rdb, prefix := pipetest.Redis(b)
	const visitors = 20_000
	batches := benchBatches(64, benchBatch, visitors)
	// Each lap over the batches changes every event id in place (at its
	// offset in the encoded hit), so no lap repeats an earlier one's ids.
	idAt := make([][]int, len(batches))
	for j, batch := range batches {
		idAt[j] = make([]int, len(batch))
		for i := range batch {
			var h pixelpb.RawHit
			if err := proto.Unmarshal(batch[i].Value, &h); err != nil {
				b.Fatal(err)
			}
			idAt[j][i] = bytes.Index(batch[i].Value, h.GetOrigin().GetEventId())
		}
	}
	run := func(b *testing.B, quiet bool) {
		p := benchProcessor(b, state.New(rdb, prefix+":rec", time.Hour))
		pt := p.emptyPart(0)
		var d decoded
		next := int64(0)
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			j := n % len(batches)
			if j == 0 && n > 0 {
				b.StopTimer()
				for k, batch := range batches {
					for i := range batch {
						batch[i].Value[idAt[k][i]]++
					}
				}
				b.StartTimer()
			}
			batch := batches[j]
			for i := range batch {
				m := &batch[i]
				m.Offset = next
				next++
				p.decode(m, &d)
				p.step(pt, m, &d, 0, quiet)
			}
			p.events, p.closed = p.events[:0], p.closed[:0]
			p.evBuf, p.evEnds = p.evBuf[:0], p.evEnds[:0]
			n++
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*benchBatch), "ns/hit")
	}
	b.Run("restore", func(b *testing.B) { run(b, true) })
	b.Run("live", func(b *testing.B) { run(b, false) })

	b.Run("base-snapshot", func(b *testing.B) {
		p := benchProcessor(b, state.New(rdb, prefix+":snap", time.Hour))
		pt := p.emptyPart(0)
		var d decoded
		for i, batch := range benchBatches(30, benchBatch, visitors) {
			for j := range batch {
				batch[j].Offset = int64(i*benchBatch + j)
				p.decode(&batch[j], &d)
				p.step(pt, &batch[j], &d, 0, true)
			}
		}
		p.parts[0] = pt
		before := testutil.ToFloat64(p.m.snapshotBytes.WithLabelValues("base"))
		n := 0
		for b.Loop() {
			pt.snap.next = -1 // a base every time
			if err := p.save(context.Background(), pt, time.Now()); err != nil {
				b.Fatal(err)
			}
			n++
		}
		bytes := (testutil.ToFloat64(p.m.snapshotBytes.WithLabelValues("base")) - before) / float64(n)
		b.ReportMetric(float64(len(pt.visitors)), "visitors")
		b.ReportMetric(bytes/float64(len(pt.visitors)), "bytes/visitor")
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(n), "ms/base")
	})
}
