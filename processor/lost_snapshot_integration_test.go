//go:build integration

package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/pixelpipe/pixelpipe/audit"
	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/internal/redisconn"
	"github.com/pixelpipe/pixelpipe/processor/state"
	"github.com/pixelpipe/pixelpipe/schemas"
)

// Redis loses the last snapshot of a partition that gets no hit
// afterwards, and the audit's figures written with it, as a failover to a
// replica that had not received it would: no next snapshot is refused to
// tell. The processor reads the stored position back while the partition
// is quiet, reloads it and writes the figures again: the audit accounts for
// every hit once more.
func TestLostSnapshotOfQuietPartition(t *testing.T) {
	kc, topics := pipetest.Kafka(t)
	rdb, prefix := pipetest.Redis(t)
	ctx := context.Background()
	boot := time.Now().Add(-time.Minute).UnixMilli()
	send := func(from, to uint64) {
		t.Helper()
		var hits []schemas.HitFields
		for seq := from; seq <= to; seq++ {
			hits = append(hits, laneHit(boot, seq, 1))
		}
		sendToPartition0(t, kc, topics.Hits, hits)
	}
	cfg := DefaultConfig()
	cfg.VisitorSecret, cfg.Group, cfg.SnapshotInterval = "s", "quiet-g", 100*time.Millisecond
	cfg.HitsTopic, cfg.EventsTopic, cfg.SessionsTopic, cfg.DLQTopic = topics.Hits, topics.Events, topics.Sessions, topics.DLQ
	reg := prometheus.NewRegistry()
	store := state.New(rdb, prefix+":proc", time.Hour)
	p, err := New(cfg, nil, reg, Deps{
		Reader:   kafkaconn.NewGroupReader(kc, cfg.HitsTopic, cfg.Group, nil),
		Events:   kafkaconn.NewProducer(kc, cfg.EventsTopic),
		Sessions: kafkaconn.NewProducer(kc, cfg.SessionsTopic),
		DLQ:      kafkaconn.NewProducer(kc, cfg.DLQTopic),
		State:    store,
		Hits:     kafkaconn.NewRanges(kc, cfg.HitsTopic, nil),
		Audit:    audit.NewWriter(rdb, prefix, time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	accepted := func(want int64) func() string {
		return func() string {
			now := time.Now()
			rep, err := audit.NewReader(rdb, prefix).Read(ctx, cfg.Group, now.Add(-time.Hour), now.Add(time.Minute), now.Add(time.Hour), "")
			if err != nil {
				return err.Error()
			}
			if rep.Accepted != want || rep.Events != want || rep.Missing != 0 {
				return fmt.Sprintf("audit: %d accepted, %d events, %d missing; want %d, %d, 0", rep.Accepted, rep.Events, rep.Missing, want, want)
			}
			return ""
		}
	}
	position := func(want int64) func() string {
		return func() string {
			got, err := store.Position(ctx, state.Partition{Group: cfg.Group, Topic: cfg.HitsTopic, ID: 0})
			if err != nil || got != want {
				return fmt.Sprintf("stored position %d (%v), want %d", got, err, want)
			}
			return ""
		}
	}
	// The partition's keys: its snapshot hash and its audit hashes (one
	// hash tag).
	tag := "{" + cfg.Group + "|" + cfg.HitsTopic + "|0}"
	keys := func() []string {
		k, err := redisconn.Keys(ctx, rdb, "*"+tag+"*")
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(k)
		return k
	}

	send(1, 10)
	pipetest.Eventually(t, time.Minute, position(10))
	pipetest.Eventually(t, time.Minute, accepted(10))
	before := map[string]string{}
	for _, k := range keys() {
		v, err := rdb.Dump(ctx, k).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		before[k] = v
	}
	send(11, 15)
	pipetest.Eventually(t, time.Minute, position(15))
	pipetest.Eventually(t, time.Minute, accepted(15))
	// Redis loses the last snapshot: the partition's keys as they were.
	for _, k := range keys() {
		var err error
		if v := before[k]; v != "" {
			err = rdb.RestoreReplace(ctx, k, 0, v).Err()
		} else {
			err = rdb.Del(ctx, k).Err()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	pipetest.Eventually(t, time.Minute, position(15))
	pipetest.Eventually(t, time.Minute, accepted(15))
	if n := testutil.ToFloat64(p.m.stateStale); n < 1 {
		t.Errorf("%v lost snapshots noticed, want one", n)
	}
}
