//go:build integration

package aggregator

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

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
	dk := hllstore.DayKey{ContentID: "c", DayStart: hllstore.DayStart(time.Now().UnixMilli())}
	prod := kafkaconn.NewProducer(kc, topics.Events)
	defer prod.Close()

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

	sendViews(t, prod, dk, time.Now().UnixMilli(), 1, 10)
	pipetest.Eventually(t, 60*time.Second, viewTotal(store, dk, 10))
	// Another owner moves the day on: the running aggregator's copy is stale.
	other := newTestAggregator(t, store)
	var others []*pixelpb.Event
	for o := int64(1); o <= 5; o++ {
		others = append(others, viewEvent(dk, time.Now().UnixMilli(), 9, o))
	}
	if err := other.apply(ctx, others); err != nil {
		t.Fatal(err)
	}
	if err := other.flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	sendViews(t, prod, dk, time.Now().UnixMilli(), 11, 20)
	pipetest.Eventually(t, 60*time.Second, viewTotal(store, dk, 25))
	if n := testutil.ToFloat64(a.m.resets); n < 1 {
		t.Fatalf("%v resets, want the stale copy rebuilt", n)
	}
}
