//go:build integration

package aggregator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// An aggregator whose copy went stale (another owner wrote the day after it
// loaded it) commits none of the offsets of the refused flush, even with
// CommitDelay 0: it rebuilds from the committed offsets and counts those
// events after all.
func TestStaleFlushCommitsNothing(t *testing.T) {
	kc, topics := pipetest.Kafka(t)
	rdb, prefix := pipetest.Redis(t)
	ctx := context.Background()
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	view := func(p int32, o int64) *pixelpb.Event {
		return &pixelpb.Event{
			ContentId: "c", Kind: pixelpb.Kind_KIND_VIEW, VisitorKey: uint64(p)<<32 | uint64(o),
			Origin: &pixelpb.Origin{ReceivedAtMs: time.Now().UnixMilli()},
			Source: &pixelpb.SourcePosition{Partition: p, Offset: o},
		}
	}
	prod := kafkaconn.NewProducer(kc, topics.Events)
	defer prod.Close()
	send := func(from, to int64) {
		t.Helper()
		var msgs []kafka.Message
		for o := from; o <= to; o++ {
			b, err := proto.Marshal(view(0, o))
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, kafka.Message{Key: []byte("c"), Value: b})
		}
		pipetest.Eventually(t, 30*time.Second, func() string { // a fresh topic may refuse at first
			if err := prod.WriteMessages(ctx, msgs...); err != nil {
				return err.Error()
			}
			return ""
		})
	}
	total := func(want uint64) func() string {
		return func() string {
			k := hllstore.Key{ContentID: "c", Kind: pixelpb.Kind_KIND_VIEW, Gran: hllstore.GranularityDay, Start: hllstore.DayStart(time.Now().UnixMilli())}
			recs, err := store.Load(ctx, []hllstore.Key{k})
			if err != nil {
				return err.Error()
			}
			if recs[0].Total != want {
				return fmt.Sprintf("total %d, want %d", recs[0].Total, want)
			}
			return ""
		}
	}

	cfg := DefaultConfig()
	cfg.Group, cfg.EventsTopic, cfg.DLQTopic, cfg.CountsTopic = "stale-agg", topics.Events, topics.DLQ, topics.Counts
	cfg.FlushInterval, cfg.DetailInterval, cfg.CommitDelay = 100*time.Millisecond, 100*time.Millisecond, 0
	open := func() *kafka.Reader { return kafkaconn.NewGroupReader(kc, cfg.EventsTopic, cfg.Group, nil) }
	a, err := New(cfg, nil, prometheus.NewRegistry(), open, store, Outputs{})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(rctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	send(1, 10)
	pipetest.Eventually(t, 60*time.Second, total(10))
	// Another owner moves the day on: the running aggregator's copy is stale.
	other := newTestAggregator(t, store)
	var others []*pixelpb.Event
	for o := int64(1); o <= 5; o++ {
		others = append(others, view(9, o))
	}
	if err := other.apply(ctx, others); err != nil {
		t.Fatal(err)
	}
	if err := other.flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	send(11, 20)
	pipetest.Eventually(t, 60*time.Second, total(25))
	if n := testutil.ToFloat64(a.m.resets); n < 1 {
		t.Fatalf("%v resets, want the stale copy rebuilt", n)
	}
}
