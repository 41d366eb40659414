//go:build integration

package processor

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/internal/visitor"
	"github.com/pixelpipe/pixelpipe/processor/session"
	"github.com/pixelpipe/pixelpipe/processor/state"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// produceWorkload writes hits of visitors over about 14 hours of event
// time (gaps up to a minute between hits, so sessions close and idle
// visitors are forgotten), with edge-retry duplicates, keyed as the edge
// keys them; it returns how many records it wrote.
func produceWorkload(t *testing.T, kc kafkaconn.Config, topic string, n, visitors int) int {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 8))
	keyer := visitor.NewKeyer("s")
	at := time.Now().Add(-20 * time.Hour).UnixMilli()
	var msgs []kafka.Message
	for i := range n {
		at += rng.Int64N(50_000)
		v := rng.IntN(visitors)
		h := &pixelpb.RawHit{
			SchemaVersion: schemas.RawHitVersion,
			Origin:        &pixelpb.Origin{EventId: make([]byte, 16), ReceivedAtMs: at, NodeId: "w", Seq: uint64(i)},
			Kind:          pixelpb.Kind_KIND_VIEW, ContentId: fmt.Sprintf("c-%d", rng.IntN(20)), SiteId: "news",
			ClientIp: []byte{81, 2, byte(v >> 8), byte(v)}, UserAgent: benchUAs[v%len(benchUAs)], UserId: fmt.Sprint(v),
			PageUrl: fmt.Sprintf("https://news.example/p/%d?utm_campaign=c%d", rng.IntN(9), v%3),
		}
		binary.BigEndian.PutUint64(h.Origin.EventId, rng.Uint64())
		binary.BigEndian.PutUint64(h.Origin.EventId[8:], rng.Uint64())
		val, err := proto.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		key, _ := keyer.Key(at, []byte("news"), []byte(h.UserId), nil, h.ClientIp, []byte(h.UserAgent))
		m := kafka.Message{Key: schemas.AppendVisitorPartitionKey(nil, key), Value: val}
		msgs = append(msgs, m)
		if rng.IntN(10) == 0 {
			msgs = append(msgs, m) // an edge retry
		}
	}
	w := kafkaconn.NewWriter(kc, topic, nil)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 0; i < len(msgs); i += 500 {
		if err := w.WriteMessages(ctx, msgs[i:min(i+500, len(msgs))]...); err != nil {
			t.Fatal(err)
		}
	}
	return len(msgs)
}

// TestRestoreEqualsUninterrupted: a processor that loads a partition's
// snapshot (a base and deltas) and replays the hits after it from Kafka ends
// with exactly the state of a processor that went through every hit without
// stopping; so does one that finds no snapshot and rebuilds from the hits
// alone. Snapshots are written every few batches here, so the stored one is
// a base with deltas (visitors changed, forgotten, and back again).
func TestRestoreEqualsUninterrupted(t *testing.T) {
	kc, topics := pipetest.Kafka(t)
	rdb, prefix := pipetest.Redis(t)
	ctx := context.Background()
	total := produceWorkload(t, kc, topics.Hits, 3000, 600)
	hits := kafkaconn.NewRanges(kc, topics.Hits, nil)

	newProc := func(group string) *Processor {
		cfg := DefaultConfig()
		cfg.VisitorSecret, cfg.Group, cfg.HitsTopic = "s", group, topics.Hits
		p, err := New(cfg, nil, prometheus.NewRegistry(), Deps{State: state.New(rdb, prefix, time.Hour), Hits: hits})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	// The uninterrupted run, in batches of 50 per partition.
	a := newProc("g")
	ends := map[int]int64{}
	atSnap := map[int]map[uint64]*session.State{} // each partition's visitors at its last snapshot
	read := 0
	for id := range 6 { // the hits topic's partitions (schemas.Topics)
		var batch []kafka.Message
		flush := func() {
			if err := a.transform(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
		end := int64(0)
		if _, err := hits.Read(ctx, id, 0, 1<<40, func(m *kafka.Message) error {
			batch = append(batch, *m)
			end = m.Offset + 1
			read++
			if len(batch) == 50 {
				flush()
				// A snapshot after every batch but those of the last 150
				// records, which the restore replays.
				if m.HighWaterMark-end > 150 {
					if err := a.save(ctx, a.parts[id], time.Now()); err != nil {
						t.Fatal(err)
					}
					atSnap[id] = cloneStates(a.parts[id].visitors)
				}
			}
			if m.Offset+1 == m.HighWaterMark {
				return errDone // the partition's last record
			}
			return nil
		}); err != nil && err != errDone {
			t.Fatal(err)
		}
		if len(batch) > 0 {
			flush()
		}
		ends[id] = end
	}
	if read != total {
		t.Fatalf("read %d of %d records", read, total)
	}
	if n := testutil.ToFloat64(a.m.snapshots.WithLabelValues("delta")); n == 0 {
		t.Fatal("no delta snapshot written; the test would not cover deltas")
	}
	if testutil.ToFloat64(a.m.duplicate) == 0 {
		t.Fatal("no duplicate dropped; the workload should have some")
	}

	for id, end := range ends {
		// The stored snapshot is exactly the state it was taken of.
		snap, err := a.d.State.Load(ctx, a.statePart(id))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(atSnap[id], snap.Visitors, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("partition %d: stored snapshot differs from the state it was taken of (-want +got):\n%s", id, diff)
		}
		want := a.parts[id]
		// From the snapshot and the hits after it.
		b := newProc("g")
		if id == 0 {
			// Kafka unreachable while the partition is restored (a real
			// client pointed at a closed port): the load fails, keeps no
			// partial state, and the next attempt restores it whole.
			down := kc
			down.Brokers = []string{closedAddr(t)}
			b.d.Hits = kafkaconn.NewRanges(down, topics.Hits, nil)
			dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			_, err := b.partition(dctx, id, end)
			cancel()
			if err == nil || b.parts[id] != nil || testutil.ToFloat64(b.m.stateErr) == 0 {
				t.Fatalf("restore with Kafka unreachable: err %v, state held %v", err, b.parts[id] != nil)
			}
			b.d.Hits = hits
		}
		got, err := b.partition(ctx, id, end)
		if err != nil {
			t.Fatal(err)
		}
		if got.snap.next <= 0 || got.snap.next >= end {
			t.Fatalf("partition %d: snapshot at %d of %d; the test needs one in between", id, got.snap.next, end)
		}
		compareParts(t, fmt.Sprintf("partition %d from its snapshot", id), want, got)
		// From the hits alone (another group has no snapshot).
		c := newProc("other")
		got, err = c.partition(ctx, id, end)
		if err != nil {
			t.Fatal(err)
		}
		compareParts(t, fmt.Sprintf("partition %d without a snapshot", id), want, got)
		if n := testutil.ToFloat64(c.m.restored); n != float64(end) {
			t.Fatalf("partition %d without a snapshot: %v hits replayed, want all %d", id, n, end)
		}
	}
}

var errDone = fmt.Errorf("done")

// closedAddr returns a local address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func cloneStates(m map[uint64]*session.State) map[uint64]*session.State {
	out := make(map[uint64]*session.State, len(m))
	for v, st := range m {
		c := *st
		c.Seen = slices.Clone(st.Seen)
		if st.Open != nil {
			o := *st.Open
			c.Open = &o
		}
		out[v] = &c
	}
	return out
}

func compareParts(t *testing.T, what string, want, got *part) {
	t.Helper()
	if want.clock != got.clock {
		t.Fatalf("%s: clock %+v, uninterrupted %+v", what, got.clock, want.clock)
	}
	if diff := cmp.Diff(want.visitors, got.visitors, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("%s: visitor states differ from the uninterrupted run (-want +got):\n%s", what, diff)
	}
	if len(want.visitors) == 0 {
		t.Fatalf("%s: no visitor state at all", what)
	}
}

// TestCorruptSnapshotRebuildsFromHits: a snapshot that cannot be read (a
// damaged hash) does not stop the partition: the processor rebuilds its
// state from the hits, as with no snapshot, and the next snapshot replaces
// the damaged one.
func TestCorruptSnapshotRebuildsFromHits(t *testing.T) {
	kc, topics := pipetest.Kafka(t)
	rdb, prefix := pipetest.Redis(t)
	ctx := context.Background()
	produceWorkload(t, kc, topics.Hits, 300, 50)
	hits := kafkaconn.NewRanges(kc, topics.Hits, nil)
	cfg := DefaultConfig()
	cfg.VisitorSecret, cfg.Group, cfg.HitsTopic = "s", "g", topics.Hits
	store := state.New(rdb, prefix, time.Hour)
	p, err := New(cfg, nil, prometheus.NewRegistry(), Deps{State: store, Hits: hits})
	if err != nil {
		t.Fatal(err)
	}
	// A snapshot of partition 0 whose base is garbage, at position 0.
	if ok, _, err := store.SaveBase(ctx, p.statePart(0), -1, state.Clock{Next: 0}, nil, nil); !ok || err != nil {
		t.Fatal(ok, err)
	}
	key := prefix + ":{g|" + topics.Hits + "|0}:snap"
	if err := rdb.HSet(ctx, key, "base", "\x01\xff\xff").Err(); err != nil {
		t.Fatal(err)
	}
	var end int64
	if _, err := hits.Read(ctx, 0, 0, 1<<40, func(m *kafka.Message) error {
		end = m.Offset + 1
		if end == m.HighWaterMark {
			return errDone
		}
		return nil
	}); err != errDone {
		t.Fatal(err)
	}
	pt, err := p.partition(ctx, 0, end)
	if err != nil {
		t.Fatalf("a corrupt snapshot stopped the partition: %v", err)
	}
	if len(pt.visitors) == 0 || pt.clock.Next != end || testutil.ToFloat64(p.m.restored) != float64(end) {
		t.Fatalf("rebuilt %d visitors up to %d from %v hits, want all %d hits", len(pt.visitors), pt.clock.Next, testutil.ToFloat64(p.m.restored), end)
	}
	if err := p.save(ctx, pt, time.Now()); err != nil {
		t.Fatal(err)
	}
	if snap, err := store.Load(ctx, p.statePart(0)); err != nil || snap.Clock.Next != end {
		t.Fatalf("the next snapshot did not replace the damaged one: %v, %+v", err, snap)
	}
}
