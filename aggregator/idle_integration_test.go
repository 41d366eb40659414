//go:build integration

package aggregator

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
)

// A partition whose watermark its last owner wrote long ago, and which the
// group has read to the end, gets a watermark of now: the counts' freshness
// does not stay behind after a rebalance on a quiet partition. A partition
// with unread records is not idle.
func TestIdlePartitionWatermark(t *testing.T) {
	kc, topics := pipetest.Kafka(t)
	rdb, prefix := pipetest.Redis(t)
	ctx := context.Background()

	// The check itself: a record nobody has committed makes its partition
	// busy; empty partitions without commits are idle.
	client := &kafka.Client{Addr: kafka.TCP(kc.Brokers...), Timeout: 30 * time.Second}
	pipetest.Eventually(t, 30*time.Second, func() string {
		rec := kafka.Record{Value: kafka.NewBytes([]byte("x"))}
		if err := kafkaconn.Send(ctx, client, topics.Sessions, 1, kafka.RequireAll, 0, kafka.NewRecordReader(rec)); err != nil {
			return err.Error()
		}
		return ""
	})
	// A broker just started may not coordinate groups yet: retry.
	pipetest.Eventually(t, 30*time.Second, func() string {
		idle, err := kafkaconn.NewGroupIdle(kc, topics.Sessions, "nobody").Idle(ctx, []int{0, 1, 2})
		if slices.Sort(idle); err != nil || !slices.Equal(idle, []int{0, 2}) {
			return fmt.Sprintf("idle partitions %v, %v; want [0 2] (1 holds an uncommitted record)", idle, err)
		}
		return ""
	})

	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	start := time.Now()
	old := start.Add(-time.Hour).UnixMilli()
	if err := store.WriteWatermarks(ctx, map[int32]hllstore.Watermark{3: {CompleteUntilMs: old, WrittenAtMs: old}}); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Group, cfg.EventsTopic, cfg.DLQTopic, cfg.CountsTopic = "idle-agg", topics.Events, topics.DLQ, topics.Counts
	cfg.FlushInterval, cfg.IdleCheck = 100*time.Millisecond, 300*time.Millisecond
	open := func() *kafka.Reader { return kafkaconn.NewGroupReader(kc, cfg.EventsTopic, cfg.Group, nil) }
	a, err := New(cfg, nil, prometheus.NewRegistry(), open, store, Outputs{Idle: kafkaconn.NewGroupIdle(kc, cfg.EventsTopic, cfg.Group)})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(rctx) }()
	pipetest.Eventually(t, 30*time.Second, func() string {
		wms, err := store.Watermarks(ctx)
		if err != nil {
			return err.Error()
		}
		if w := wms[3]; w.CompleteUntilMs < start.UnixMilli() {
			return "partition 3's watermark still " + time.UnixMilli(w.CompleteUntilMs).UTC().Format(time.RFC3339)
		}
		return ""
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
