//go:build integration

package aggregator

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
)

// Redis loses the last write of a day that gets no event afterwards, as a
// failover to a replica that had not received it would: the aggregator
// would never write that day again, so no refused write tells it. Before
// it commits the offsets of those events it finds the write missing,
// commits nothing, resets and replays them: the day's total comes back.
func TestLostWriteOfQuietDayReplayed(t *testing.T) {
	kc, topics := pipetest.Kafka(t)
	rdb, prefix := pipetest.Redis(t)
	ctx := context.Background()
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	now := time.Now().UnixMilli()
	dk := hllstore.DayKey{ContentID: "quiet", DayStart: hllstore.DayStart(now)}
	prod := kafkaconn.NewProducer(kc, topics.Events)
	defer prod.Close()
	// The day's hashes (day, hour and breakdown records) as Redis holds
	// them; restore puts them back, and deletes those that did not exist.
	dh, hh, bh := store.DayRedisKeys(dk)
	hashes := []string{dh, hh, bh}
	dump := func() map[string]string {
		t.Helper()
		out := map[string]string{}
		for _, k := range hashes {
			v, err := rdb.Dump(ctx, k).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				t.Fatal(err)
			}
			out[k] = v
		}
		return out
	}
	restore := func(d map[string]string) {
		t.Helper()
		for k, v := range d {
			var err error
			if v == "" {
				err = rdb.Del(ctx, k).Err()
			} else {
				err = rdb.RestoreReplace(ctx, k, 0, v).Err()
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}

	cfg := DefaultConfig()
	cfg.Group, cfg.EventsTopic, cfg.DLQTopic, cfg.CountsTopic = "lost-agg", topics.Events, topics.DLQ, topics.Counts
	cfg.FlushInterval, cfg.DetailInterval, cfg.CommitDelay = 100*time.Millisecond, 100*time.Millisecond, 3*time.Second
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

	sendViews(t, prod, dk, now, 1, 10)
	pipetest.Eventually(t, 60*time.Second, viewTotal(store, dk, 10))
	before := dump()
	sendViews(t, prod, dk, now, 11, 15)
	pipetest.Eventually(t, 60*time.Second, viewTotal(store, dk, 15))
	restore(before) // the write of 11-15 is lost; no event follows
	if msg := viewTotal(store, dk, 15)(); msg == "" {
		t.Fatal("the restore did not undo the write")
	}
	pipetest.Eventually(t, 60*time.Second, viewTotal(store, dk, 15))
	if n := testutil.ToFloat64(a.m.lost); n < 1 {
		t.Errorf("%v lost writes counted, want the quiet day's", n)
	}
	if n := testutil.ToFloat64(a.m.resets); n < 1 {
		t.Errorf("%v resets, want the lost write replayed", n)
	}
}
