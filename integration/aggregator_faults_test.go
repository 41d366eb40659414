//go:build integration

package integration

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/pixelpipe/pixelpipe/internal/loadgen"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas"
)

// Fault scenarios run shortened by default, so `make test` stays quick;
// PIXEL_FAULT_FULL=1 (make test-faults) runs them at full length.
func faultScale() (rounds int, load int) {
	if os.Getenv("PIXEL_FAULT_FULL") == "1" {
		return 40, 40_000
	}
	return 5, 3_000
}

// backgroundLoad sends total hits at rate until done, and returns a function
// that waits for the result.
func backgroundLoad(t *testing.T, s *stack, total int, rate float64, seed uint64) func() *loadgen.Result {
	t.Helper()
	var res *loadgen.Result
	var err error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		res, err = loadgen.Run(ctx, loadgen.Config{
			BaseURL: s.edgeURL, Total: total, Rate: rate, Workers: 4,
			Contents: 25, ContentPrefix: "f-", Zipf: true, Visitors: 800, VisitorPrefix: "v-", Seed: seed, Campaign: faultCampaign,
		})
	}()
	return func() *loadgen.Result {
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if res.Acked != total {
			t.Fatalf("edge acknowledged %d of %d hits (first error %v)", res.Acked, res.Sent, res.FirstErr)
		}
		return res
	}
}

// checkExact waits until the query API reports, for every content id, exactly
// the acknowledged hits and uniques within the HyperLogLog bound.
func checkExact(t *testing.T, s *stack, res *loadgen.Result, timeout time.Duration) {
	t.Helper()
	pipetest.Eventually(t, timeout, func() string {
		for cid, want := range res.PerContent {
			got, err := s.stats(cid)
			if err != nil {
				return fmt.Sprintf("query %s: %v", cid, err)
			}
			if got.Total != uint64(want.Hits) {
				return fmt.Sprintf("%s total = %d, want exactly %d", cid, got.Total, want.Hits)
			}
			n := len(want.Visitors)
			if d := math.Abs(float64(got.Uniques) - float64(n)); d > uniquesBound(n) {
				return fmt.Sprintf("%s uniques = %d, want %d ± %.0f", cid, got.Uniques, n, uniquesBound(n))
			}
		}
		return ""
	})
	checkAudit(t, s, res.Acked, res.Acked, timeout)
}

// aggregatorEnv configures an aggregator process for the stack's topics and
// key prefix, on the Redis at redisAddr.
func aggregatorEnv(s *stack, redisAddr string, commitDelay time.Duration) []string {
	return []string{
		"PIXEL_KAFKA_BROKERS=" + s.kc.Brokers[0],
		"PIXEL_KAFKA_TOPICPREFIX=" + strings.TrimSuffix(s.topics.Hits, schemas.TopicHits),
		"PIXEL_REDIS_ADDR=" + redisAddr,
		"PIXEL_REDIS_KEYPREFIX=" + s.prefix,
		"PIXEL_ADMIN_LISTENADDR=127.0.0.1:0",
		"PIXEL_AGGREGATOR_FLUSHINTERVAL=100ms",
		"PIXEL_AGGREGATOR_COMMITDELAY=" + commitDelay.String(),
	}
}

// TestFaultAggregatorKillLoop kills the aggregator process with SIGKILL at random
// moments (mid-flush among them) while hits flow, restarts it each time, and
// requires exact totals at the end.
func TestFaultAggregatorKillLoop(t *testing.T) {
	rounds, total := faultScale()
	bin := buildBinary(t)
	s := newStack(t)
	s.startEdge()
	s.startProcessorWith("kill-proc", shortVisits)
	s.startQuery()
	env := aggregatorEnv(s, pipetest.RedisAddr(), time.Second)
	wait := backgroundLoad(t, s, total, float64(total)/8, 11)
	killLoop(t, s, bin, "aggregator", env, rounds, wait, 1)
}

// killLoop runs the binary's part (aggregator or processor) with env and
// kills it with SIGKILL after a random 0.7-2.2 s, rounds times, while the
// background load runs; then it starts the part once more, waits for the
// load, and requires exact totals.
func killLoop(t *testing.T, s *stack, bin, part string, env []string, rounds int, wait func() *loadgen.Result, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	for i := range rounds {
		p := start(t, bin, fmt.Sprint(part, "-", i), "", env, part)
		time.Sleep(time.Duration(700+rng.IntN(1500)) * time.Millisecond)
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-p.done
	}
	res := wait()
	last := start(t, bin, part+"-final", "", env, part)
	checkExact(t, s, res, 2*time.Minute)
	checkVisits(t, s, time.Minute)
	checkRecipientViews(t, s, faultCampaign, time.Minute)
	last.stop(t, 30*time.Second)
}

// TestFaultRedisRestart kills Redis (SIGKILL, append-only file fsynced
// every second, so its last writes are lost) and restarts it, repeatedly,
// while hits flow; every other time the aggregator process is killed in the
// same instant, so the counts Redis lost must come back from Kafka. The
// totals must still be exact.
func TestFaultRedisRestart(t *testing.T) {
	rounds, total := faultScale()
	bin := buildBinary(t)
	pr := pipetest.StartPrivateRedis(t)
	s := newStack(t)
	s.rdb = redis.NewClient(&redis.Options{Addr: pr.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = s.rdb.Close() })
	s.startEdge()
	s.startProcessorWith("redis-proc", shortVisits)
	s.startQuery()
	env := aggregatorEnv(s, pr.Addr(), 3*time.Second)
	agg := start(t, bin, "aggregator-0", "", env, "aggregator")
	wait := backgroundLoad(t, s, total, float64(total)/8, 12)
	for i := range rounds {
		time.Sleep(time.Duration(800+150*i%700) * time.Millisecond)
		switch i % 3 {
		case 0: // Redis crashes alone
			pr.Kill()
		case 1: // Redis and the aggregator crash together
			pr.Kill()
			_ = agg.cmd.Process.Kill()
			<-agg.done
		case 2: // clean Redis restart
			pr.Shutdown()
		}
		time.Sleep(300 * time.Millisecond)
		pr.Start()
		if i%3 == 1 {
			agg = start(t, bin, fmt.Sprint("aggregator-", i+1), "", env, "aggregator")
		}
	}
	res := wait()
	checkExact(t, s, res, 2*time.Minute)
	checkVisits(t, s, time.Minute)
	checkRecipientViews(t, s, faultCampaign, time.Minute)
	agg.stop(t, 30*time.Second)
}

// TestFaultRebalances runs a second aggregator in the same group that
// joins and leaves again and again while hits flow, forcing rebalances.
func TestFaultRebalances(t *testing.T) {
	rounds, total := faultScale()
	s := newStack(t)
	s.startEdge()
	s.startProcessorWith("rb-proc", shortVisits)
	s.startAggregator("rb-agg")
	s.startQuery()
	wait := backgroundLoad(t, s, total, float64(total)/8, 13)
	for i := range rounds {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		a := s.newAggregator("rb-agg", prometheus.NewRegistry())
		go func() { done <- a.Run(ctx) }()
		time.Sleep(time.Duration(1000+200*(i%4)) * time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("second aggregator, round %d: %v", i, err)
		}
	}
	res := wait()
	checkExact(t, s, res, 2*time.Minute)
	checkVisits(t, s, time.Minute)
	checkRecipientViews(t, s, faultCampaign, time.Minute)
}

// TestFaultProcessorKillLoop kills the processor process with SIGKILL at
// random moments while hits flow (between its writes, snapshots and
// commits, wherever it is), restarts it each time, and requires exact
// totals at the end: a restarted processor rebuilds its state from the last
// snapshot and the hits since, and the events it writes again carry the
// same positions, which the aggregator skips.
func TestFaultProcessorKillLoop(t *testing.T) {
	rounds, total := faultScale()
	bin := buildBinary(t)
	s := newStack(t)
	s.procGroup = "killed"
	s.startEdge()
	s.startAggregator("kill-agg")
	s.startQuery()
	env := []string{
		"PIXEL_KAFKA_BROKERS=" + s.kc.Brokers[0],
		"PIXEL_KAFKA_TOPICPREFIX=" + strings.TrimSuffix(s.topics.Hits, schemas.TopicHits),
		"PIXEL_VISITOR_SECRET=" + secret,
		"PIXEL_REDIS_ADDR=" + pipetest.RedisAddr(),
		"PIXEL_REDIS_KEYPREFIX=" + s.prefix,
		"PIXEL_ADMIN_LISTENADDR=127.0.0.1:0",
		"PIXEL_PROCESSOR_GROUP=" + s.procGroup,
		// Snapshots several times between kills, so restarts load one and
		// replay the hits after it.
		"PIXEL_PROCESSOR_SNAPSHOTINTERVAL=200ms",
		// Visits end 2 s after their last hit, by the clock if need be, so
		// the kills also fall among visits being closed and written.
		"PIXEL_PROCESSOR_SESSIONTIMEOUT=2s",
		"PIXEL_PROCESSOR_CLOCKTICK=500ms",
	}
	wait := backgroundLoad(t, s, total, float64(total)/8, 13)
	killLoop(t, s, bin, "processor", env, rounds, wait, 2)
}
