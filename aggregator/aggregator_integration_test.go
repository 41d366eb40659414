//go:build integration

package aggregator

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

var day = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC).UnixMilli()

func newTestAggregator(t *testing.T, store *hllstore.Store) *Aggregator {
	t.Helper()
	a, err := New(DefaultConfig(), nil, prometheus.NewRegistry(), nil, store, Outputs{})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// events returns n distinct events of content "c": source partitions 0-2, rising
// offsets per partition, visitors v%97.
func events(n int) []*pixelpb.Event {
	out := make([]*pixelpb.Event, n)
	offsets := map[int32]int64{}
	for i := range n {
		p := int32(i % 3)
		offsets[p]++
		out[i] = &pixelpb.Event{
			ContentId:  "c",
			Kind:       pixelpb.Kind_KIND_VIEW,
			Origin:     &pixelpb.Origin{ReceivedAtMs: day + int64(i)},
			Source:     &pixelpb.SourcePosition{Partition: p, Offset: offsets[p]},
			VisitorKey: uint64(i%97)*0x9e3779b97f4a7c15 + 1,
		}
	}
	return out
}

func total(t *testing.T, store *hllstore.Store) (uint64, uint64) {
	t.Helper()
	recs, err := store.Load(context.Background(), []hllstore.Key{{ContentID: "c", Kind: pixelpb.Kind_KIND_VIEW, Gran: pixelpb.Granularity_GRANULARITY_DAY, Start: hllstore.DayStart(day)}})
	if err != nil {
		t.Fatal(err)
	}
	return recs[0].Total, recs[0].Sketch.Estimate()
}

// Replays of any prefix, in batches, after the first delivery: every event
// counts once. (Within one partition Kafka keeps order, so a replay is a
// repeat of a prefix of each source partition's sequence.)
func TestReplaysCountOnce(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	ctx := context.Background()
	evs := events(600)
	rng := rand.New(rand.NewPCG(1, 2))

	a := newTestAggregator(t, store)
	for start := 0; start < len(evs); {
		end := min(len(evs), start+1+rng.IntN(50))
		// Deliver the batch, then replay a random earlier stretch of it.
		if err := a.apply(ctx, evs[start:end]); err != nil {
			t.Fatal(err)
		}
		from := rng.IntN(end)
		if err := a.apply(ctx, evs[from:end]); err != nil {
			t.Fatal(err)
		}
		if rng.IntN(3) == 0 {
			if err := a.flush(ctx, nil); err != nil {
				t.Fatal(err)
			}
		}
		start = end
	}
	if err := a.flush(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n, u := total(t, store); n != 600 || u != 97 {
		t.Fatalf("total %d uniques %d, want 600 and 97", n, u)
	}

	// A fresh aggregator (a restart) replaying everything from the start
	// changes nothing.
	b := newTestAggregator(t, store)
	if err := b.apply(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := b.flush(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n, u := total(t, store); n != 600 || u != 97 {
		t.Fatalf("after replay: total %d uniques %d, want 600 and 97", n, u)
	}
}

// A stale owner, which loaded the record before another owner moved it on,
// cannot overwrite it.
func TestStaleOwnerIsRefused(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	ctx := context.Background()
	evs := events(30)

	stale := newTestAggregator(t, store)
	if err := stale.apply(ctx, evs[:6]); err != nil { // loads the empty record
		t.Fatal(err)
	}
	owner := newTestAggregator(t, store)
	if err := owner.apply(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := owner.flush(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := stale.flush(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n, _ := total(t, store); n != 30 {
		t.Fatalf("total %d after a stale write, want 30", n)
	}
	if len(stale.state) != 0 {
		t.Fatal("stale owner kept its refused state")
	}
}
