//go:build integration

package processor

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/pixelpipe/pixelpipe/audit"
	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/processor/state"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// TestAuditFindsHoles runs hits of one edge lane through real processors
// on real Kafka and Redis, with two numbers missing, one hit sent twice, one
// invalid and one without a lane, and reads the audit back: the missing
// numbers are reported as missing with their range, the copy as a
// duplicate dropped, the invalid one as dead-lettered; when the missing
// hits arrive late they are accounted for; a restarted processor (which
// loads the snapshot and replays the hits after it) counts nothing twice.
func TestAuditFindsHoles(t *testing.T) {
	kc, topics := pipetest.Kafka(t)
	rdb, prefix := pipetest.Redis(t)
	ctx := context.Background()
	boot := time.Now().Add(-time.Minute).UnixMilli()
	send := func(hits ...schemas.HitFields) { sendToPartition0(t, kc, topics.Hits, hits) }
	hit := func(seq uint64, lane uint32) schemas.HitFields { return laneHit(boot, seq, lane) }
	var first []schemas.HitFields
	for s := uint64(1); s <= 20; s++ {
		if s == 7 || s == 8 {
			continue
		}
		h := hit(s, 1)
		if s == 12 {
			h.InvalidReason = schemas.InvalidBadKind
		}
		first = append(first, h)
		if s == 5 {
			first = append(first, h) // an edge retry
		}
	}
	first = append(first, hit(99, 0)) // an edge that knew no partition count
	send(first...)

	run := func(name string, check func() string) {
		t.Helper()
		cfg := DefaultConfig()
		cfg.VisitorSecret, cfg.Group, cfg.SnapshotInterval = "s", "audit-g", 50*time.Millisecond
		cfg.HitsTopic, cfg.EventsTopic, cfg.SessionsTopic, cfg.DLQTopic = topics.Hits, topics.Events, topics.Sessions, topics.DLQ
		p, err := New(cfg, nil, prometheus.NewRegistry(), Deps{
			Reader:   kafkaconn.NewGroupReader(kc, cfg.HitsTopic, cfg.Group, nil),
			Events:   kafkaconn.NewProducer(kc, cfg.EventsTopic),
			Sessions: kafkaconn.NewProducer(kc, cfg.SessionsTopic),
			DLQ:      kafkaconn.NewProducer(kc, cfg.DLQTopic),
			State:    state.New(rdb, prefix+":proc", time.Hour),
			Hits:     kafkaconn.NewRanges(kc, cfg.HitsTopic, nil),
			Audit:    audit.NewWriter(rdb, prefix, time.Hour),
		})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- p.Run(rctx) }()
		pipetest.Eventually(t, time.Minute, func() string {
			if msg := check(); msg != "" {
				return name + ": " + msg
			}
			return ""
		})
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	r := audit.NewReader(rdb, prefix)
	read := func() *audit.Report {
		t.Helper()
		now := time.Now()
		rep, err := r.Read(ctx, "audit-g", now.Add(-time.Hour), now.Add(time.Minute), now.Add(time.Hour), "")
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	want := func(acc, ev, dead, miss, dup, unseq int64) func() string {
		return func() string {
			rep := read()
			got := audit.Totals{Accepted: rep.Accepted, Events: rep.Events, DeadLettered: rep.DeadLettered, Missing: rep.Missing, Duplicates: rep.Duplicates, Unsequenced: rep.Unsequenced}
			exp := audit.Totals{Accepted: acc, Events: ev, DeadLettered: dead, Missing: miss, Duplicates: dup, Unsequenced: unseq}
			if got != exp {
				return fmt.Sprintf("audit %+v, want %+v", got, exp)
			}
			return ""
		}
	}
	// 18 numbers seen of 20 (one dead-lettered), 7-8 missing, one copy,
	// and the hit without a lane (an event, unchecked).
	run("first pass", want(21, 18, 1, 2, 1, 1))
	rep := read()
	if len(rep.Nodes) != 1 || len(rep.Nodes[0].Missing) != 1 {
		t.Fatalf("nodes %+v", rep.Nodes)
	}
	if m := rep.Nodes[0].Missing[0]; m.FromSeq != 7 || m.ToSeq != 8 || m.Partition != 0 || m.BootMs != boot {
		t.Fatalf("missing range %+v, want 7-8 of partition 0, boot %d", m, boot)
	}

	// The missing pair arrives late, and one more hit after it; a new
	// processor of the group loads the snapshot and goes on.
	send(hit(7, 1), hit(8, 1), hit(21, 1))
	run("after the late hits", want(22, 21, 1, 0, 1, 1))

	// Copies of the last four hits (three of the lane, dropped by number;
	// the one without a lane, by its event id) change nothing but the
	// duplicates.
	send(first[len(first)-4:]...)
	run("after copies", want(22, 21, 1, 0, 5, 1))
}

// sendToPartition0 writes hits to partition 0 of topic, as the edge writes
// them.
func sendToPartition0(t *testing.T, kc kafkaconn.Config, topic string, hits []schemas.HitFields) {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(kc.Brokers...), Timeout: 30 * time.Second}
	// A topic just created may not have its leader yet: retry (with fresh
	// records: a send consumes their readers).
	pipetest.Eventually(t, 30*time.Second, func() string {
		var recs []kafka.Record
		for i := range hits {
			h := &hits[i]
			b := schemas.AppendRawHit(nil, h)
			recs = append(recs, kafka.Record{Key: kafka.NewBytes(binary.BigEndian.AppendUint64(nil, h.Seq)), Value: kafka.NewBytes(b), Time: time.UnixMilli(h.ReceivedAtMs)})
		}
		if err := kafkaconn.Send(context.Background(), client, topic, 0, kafka.RequireAll, 0, kafka.NewRecordReader(recs...)); err != nil {
			return err.Error()
		}
		return ""
	})
}

// laneHit is hit number seq of edge "edge-a" (booted at boot) in lane.
func laneHit(boot int64, seq uint64, lane uint32) schemas.HitFields {
	h := schemas.HitFields{
		ReceivedAtMs: time.Now().UnixMilli(), NodeID: "edge-a", BootMs: boot, Seq: seq, Lane: lane,
		Kind: pixelpb.Kind_KIND_VIEW, ContentID: []byte("audit-c"), SiteID: []byte("news"),
		ClientIP: []byte{81, 2, 3, byte(seq)}, UserAgent: []byte(chromeUA), UserID: fmt.Append(nil, "u", seq),
	}
	binary.BigEndian.PutUint64(h.EventID[:8], uint64(boot))
	binary.BigEndian.PutUint64(h.EventID[8:], seq|uint64(lane)<<40)
	return h
}

// TestAuditCountsReplayWithoutSnapshot: a batch whose write fails before
// its partition's first snapshot is retried with the partition rebuilt from
// the hits (there is no snapshot to load). The hits of the batches before
// it were processed and written, but their audit figures were held in
// memory only (figures are written with snapshots): the rebuild must count
// them, once, or the audit reports fewer hits accepted than the edge
// numbered.
func TestAuditCountsReplayWithoutSnapshot(t *testing.T) {
	kc, topics := pipetest.Kafka(t)
	rdb, prefix := pipetest.Redis(t)
	ctx := context.Background()
	boot := time.Now().Add(-time.Minute).UnixMilli()
	var hits []schemas.HitFields
	for s := uint64(1); s <= 30; s++ {
		hits = append(hits, laneHit(boot, s, 1))
	}
	sendToPartition0(t, kc, topics.Hits, hits)

	cfg := DefaultConfig()
	cfg.VisitorSecret, cfg.Group, cfg.SnapshotInterval = "s", "replay-g", time.Hour
	cfg.HitsTopic, cfg.EventsTopic, cfg.SessionsTopic, cfg.DLQTopic = topics.Hits, topics.Events, topics.Sessions, topics.DLQ
	ranges := kafkaconn.NewRanges(kc, cfg.HitsTopic, nil)
	p, err := New(cfg, nil, prometheus.NewRegistry(), Deps{
		Events:   kafkaconn.NewProducer(kc, cfg.EventsTopic),
		Sessions: kafkaconn.NewProducer(kc, cfg.SessionsTopic),
		DLQ:      kafkaconn.NewProducer(kc, cfg.DLQTopic),
		State:    state.New(rdb, prefix+":proc", time.Hour),
		Hits:     ranges,
		Audit:    audit.NewWriter(rdb, prefix, time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []kafka.Message
	if _, err := ranges.Read(ctx, 0, 0, int64(len(hits)), func(m *kafka.Message) error {
		msgs = append(msgs, *m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(hits) {
		t.Fatalf("read %d hits of %d", len(msgs), len(hits))
	}
	batch := func(in []kafka.Message) {
		t.Helper()
		if err := p.transform(ctx, in); err != nil {
			t.Fatal(err)
		}
		if err := p.deliver(ctx); err != nil {
			t.Fatal(err)
		}
	}
	batch(msgs[:20])
	if snap, err := p.d.State.Load(ctx, p.statePart(0)); err != nil || snap.Clock.Next >= 0 {
		t.Fatalf("a snapshot was written (at %v, err %v): the test needs none", snap, err)
	}
	// The next batch's write fails: handle drops the partition's state,
	// and the retry rebuilds it.
	p.forget(msgs[20:])
	batch(msgs[20:])
	if err := p.save(ctx, p.parts[0], time.Now()); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rep, err := audit.NewReader(rdb, prefix).Read(ctx, "replay-g", now.Add(-time.Hour), now.Add(time.Minute), now.Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Accepted != 30 || rep.Events != 30 || rep.Missing != 0 || rep.Duplicates != 0 {
		t.Fatalf("audit after the rebuild: %+v, want 30 accepted, 30 events, none missing or duplicate", rep.Totals)
	}
}
