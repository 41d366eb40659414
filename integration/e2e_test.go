//go:build integration

package integration

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/loadgen"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// TestEndToEnd sends hits over HTTP for many content ids and visitors and
// checks that the query API reports exactly the acknowledged hits per
// content id, and uniques within the HyperLogLog bound. Then it replays the
// whole raw topic through a second processor group, which writes every event
// a second time, then the whole events topic through a second aggregator
// group, and checks that not one count moves.
func TestEndToEnd(t *testing.T) {
	s := newStack(t)
	s.startEdge()
	s.startProcessor("it-proc")
	aggReg := s.startAggregator("it-agg")
	s.startQuery()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := loadgen.Run(ctx, loadgen.Config{
		BaseURL: s.edgeURL, Total: 4000, Workers: 8,
		Contents: 40, ContentPrefix: "e2e-", Zipf: true,
		Visitors: 1500, VisitorPrefix: "v-", Seed: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Acked != 4000 || res.Failed != 0 {
		t.Fatalf("edge acknowledged %d of %d hits (first error %v)", res.Acked, res.Sent, res.FirstErr)
	}

	checkAll := func(phase string) {
		t.Helper()
		pipetest.Eventually(t, 90*time.Second, func() string {
			for cid, want := range res.PerContent {
				got, err := s.stats(cid)
				if err != nil {
					return fmt.Sprintf("%s: query %s: %v", phase, cid, err)
				}
				if got.Total != uint64(want.Hits) {
					return fmt.Sprintf("%s: %s total = %d, want exactly %d", phase, cid, got.Total, want.Hits)
				}
				n := len(want.Visitors)
				if d := math.Abs(float64(got.Uniques) - float64(n)); d > uniquesBound(n) {
					return fmt.Sprintf("%s: %s uniques = %d, want %d ± %.0f", phase, cid, got.Uniques, n, uniquesBound(n))
				}
			}
			return ""
		})
	}
	checkAll("first pass")
	checkAudit(t, s, 4000, 4000, 90*time.Second)
	if got := counter(t, aggReg, "pixel_aggregator_events_total", "applied"); got != 4000 {
		t.Fatalf("aggregator applied %v events, want 4000", got)
	}

	// Every hit is processed again by a new group: the events topic now holds
	// each event twice, with the same source positions.
	s.startProcessor("it-proc-replay")
	pipetest.Eventually(t, 90*time.Second, func() string {
		if got := counter(t, aggReg, "pixel_aggregator_events_total", "skipped"); got != 4000 {
			return fmt.Sprintf("aggregator skipped %v duplicate events, want 4000", got)
		}
		return ""
	})
	checkAll("after replaying every hit")
	if got := counter(t, aggReg, "pixel_aggregator_events_total", "applied"); got != 4000 {
		t.Fatalf("aggregator applied %v events after the replay, want still 4000", got)
	}

	// A new aggregator group reads the events topic from the start (an offset
	// reset) into the same Redis: every event, original or duplicate, is
	// skipped, and no count moves.
	replayReg := s.startAggregator("it-agg-from-start")
	pipetest.Eventually(t, 90*time.Second, func() string {
		if got := counter(t, replayReg, "pixel_aggregator_events_total", "skipped"); got != 8000 {
			return fmt.Sprintf("replaying aggregator skipped %v events, want all 8000", got)
		}
		return ""
	})
	if got := counter(t, replayReg, "pixel_aggregator_events_total", "applied"); got != 0 {
		t.Fatalf("replaying aggregator applied %v events, want 0", got)
	}
	checkAll("after an aggregator replayed the events topic from the start")

	// The top-N index and the watermark, read as the query side does.
	reader := counts.NewReader(hllstore.New(s.rdb, hllstore.Config{Prefix: s.prefix}))
	// The top-N and breakdowns are written every detail interval.
	day := time.Now().UTC().Truncate(24 * time.Hour)
	var top []counts.Share
	pipetest.Eventually(t, 60*time.Second, func() string {
		var err error
		top, err = reader.Top(context.Background(), day, day.Add(24*time.Hour), pixelpb.Kind_KIND_VIEW, "views", 3, nil)
		if err != nil || len(top) != 3 {
			return fmt.Sprintf("top 3: %v %v", top, err)
		}
		for i, e := range top {
			if want := res.PerContent[e.Key]; want == nil || e.Total != uint64(want.Hits) || (i > 0 && e.Total > top[i-1].Total) {
				return fmt.Sprintf("top %d: %+v, loadgen acknowledged %v for it", i, e, want)
			}
		}
		inTop := map[string]bool{top[0].Key: true, top[1].Key: true, top[2].Key: true}
		for cid, want := range res.PerContent {
			if !inTop[cid] && want.Hits > int(top[2].Total) {
				return fmt.Sprintf("%s has %d hits but is not in the top 3 %v", cid, want.Hits, top)
			}
		}
		return ""
	})
	// Every events partition got events, and the aggregator is caught up.
	pipetest.Eventually(t, 30*time.Second, func() string {
		wm, err := reader.Freshness(context.Background(), time.Now(), 6)
		if err != nil || wm.Status != "complete" || wm.Lag > 10*time.Second {
			return fmt.Sprintf("watermark %+v %v", wm, err)
		}
		return ""
	})
	pipetest.Eventually(t, 60*time.Second, func() string {
		bd, err := reader.Breakdown(context.Background(), counts.Scope{ContentID: top[0].Key, From: day, To: day.Add(24 * time.Hour)}, hllstore.DimCountry, 0)
		var sum uint64
		for _, v := range bd {
			sum += v.Total
		}
		if err != nil || sum != top[0].Total {
			return fmt.Sprintf("country breakdown of %s: %+v %v, want all %d events", top[0].Key, bd, err, top[0].Total)
		}
		return ""
	})

	// A query for a content id nobody hit is zero, not an error.
	got, err := s.stats("never-hit")
	if err != nil || got.Total != 0 || got.Uniques != 0 {
		t.Fatalf("unhit content: %+v, %v", got, err)
	}
}
