//go:build integration

package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/edge"
	"github.com/pixelpipe/pixelpipe/internal/loadgen"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
)

// brokerDown is how long a killed broker stays down: 30 s with
// PIXEL_FAULT_FULL=1 (make test-faults), 6 s under `go test`.
func brokerDown() time.Duration {
	if faultFull() {
		return 30 * time.Second
	}
	return 6 * time.Second
}

const brokerFaultRate = 150.0 // hits per second, with three brokers on two cores

// TestFaultKafkaBrokers runs the pipeline (edge, processor, aggregator,
// query) on a private Kafka cluster of three brokers (topics with three
// replicas, min.insync.replicas 2, unclean leader election off) under a
// steady load and, in turn: kills with SIGKILL the broker leading most
// partitions of the raw hits topic and restarts it after a while; does the
// same to the leader of the events topic; then restarts the three brokers
// one after the other (SIGTERM, start, wait until every replica is back in
// sync). At the end every hit the edge acknowledged must be in the raw
// topic, every hit counted exactly once, uniques within their bound, and
// the completeness audit must find nothing missing. Each step logs how long
// the cluster took to be whole again and what the parts saw (the edge's
// failed produce requests and spool, the processor's and the aggregator's
// write errors).
func TestFaultKafkaBrokers(t *testing.T) {
	kcl, kc, topics := pipetest.PrivateKafkaCluster(t)
	s := newStack(t)
	s.kc, s.topics = kc, topics
	t.Logf("private Kafka cluster %s; topics %s...", kcl, topics.Hits)

	_, edgeReg := s.startEdgeWith(func(c *edge.Config) { c.NodeID = "kafka-brokers" })
	s.procGroup = "brokers-proc"
	procReg := s.startProcessorWith(s.procGroup, shortVisits)
	aggReg := s.startAggregator("brokers-agg")
	s.startQuery()

	// The load runs until the faults are over, and a little longer.
	loadCtx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	var res *loadgen.Result
	var loadErr error
	var loadWG sync.WaitGroup
	loadWG.Add(1)
	go func() {
		defer loadWG.Done()
		res, loadErr = loadgen.Run(loadCtx, loadgen.Config{
			BaseURL: s.edgeURL, Rate: brokerFaultRate, Duration: 20 * time.Minute, Workers: 4,
			Contents: 25, ContentPrefix: "b-", Zipf: true, Visitors: 800, VisitorPrefix: "v-", Seed: 31, Tag: true, Campaign: faultCampaign,
		})
	}()

	all := []string{topics.Hits, topics.Events, topics.Sessions, topics.Counts, topics.DLQ}
	start := time.Now()
	// The edge's spool holds the hits Kafka has not acknowledged: more
	// than a second of traffic there means some partition is not written.
	var spoolPeak float64
	var lastBacklog time.Time
	watch := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			n := gauge(t, edgeReg, "pixel_edge_spool_hits")
			spoolPeak = max(spoolPeak, n)
			if n > brokerFaultRate {
				lastBacklog = time.Now()
			}
		}
	}
	errs := func() [5]float64 {
		return [5]float64{
			counter(t, edgeReg, "pixel_edge_publish_batches_total", "error"),
			labelled(t, procReg, "pixel_processor_write_errors_total", "", ""),
			labelled(t, procReg, "pixel_kafka_reader_fetch_errors_total", "", ""),
			counter(t, aggReg, "pixel_aggregator_flushes_total", "error"),
			labelled(t, aggReg, "pixel_kafka_reader_fetch_errors_total", "", ""),
		}
	}
	step := func(what string, fault func() int) {
		t.Helper()
		watch(4 * time.Second) // the pipeline flows (again)
		before := errs()
		t0 := time.Now()
		node := fault()
		whole := kcl.WaitInSync(t, 3*time.Minute, all...)
		watch(2 * time.Second)
		after := errs()
		backlog := "never"
		if lastBacklog.After(t0) {
			backlog = "until " + lastBacklog.Sub(t0).Round(100*time.Millisecond).String() + " after the fault"
		}
		t.Logf("%s at %v: broker %d; every replica in sync again %v after it was back (%v in all); edge backlog over a second of hits: %s (spool peak so far %.0f hits); since: edge %.0f failed produce requests, processor %.0f write and %.0f fetch errors, aggregator %.0f failed flushes and %.0f fetch errors",
			what, time.Since(start).Round(time.Second), node, whole.Round(10*time.Millisecond), time.Since(t0).Round(10*time.Millisecond), backlog, spoolPeak,
			after[0]-before[0], after[1]-before[1], after[2]-before[2], after[3]-before[3], after[4]-before[4])
	}
	killed := 0
	killLeader := func(topic string) func() int {
		return func() int {
			n := kcl.Leader(t, topic, killed)
			killed = n
			kcl.Node(n).Kill(t)
			watch(brokerDown())
			kcl.Node(n).Start(t)
			return n
		}
	}
	step("kill -9 of the hits topic's leader", killLeader(topics.Hits))
	step("kill -9 of the events topic's leader", killLeader(topics.Events))
	for n := 1; n <= len(kcl.Nodes); n++ {
		step("rolling restart", func() int {
			kcl.Node(n).Stop(t)
			kcl.Node(n).Start(t)
			return n
		})
	}
	watch(4 * time.Second)
	stopLoad()
	loadWG.Wait()
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	if res.Failed != 0 {
		t.Errorf("edge failed %d of %d requests (first: %v); it must always answer", res.Failed, res.Sent, res.FirstErr)
	}
	t.Logf("load: %d hits acknowledged in %v", res.Acked, res.Elapsed.Round(time.Second))
	pipetest.Eventually(t, 2*time.Minute, func() string {
		if n := gauge(t, edgeReg, "pixel_edge_spool_hits"); n > 0 {
			return fmt.Sprintf("%.0f hits still in the spool", n)
		}
		return ""
	})
	if n := counter(t, edgeReg, "pixel_edge_hits_total", "dropped"); n != 0 {
		t.Errorf("%v hits dropped", n)
	}
	verifyNoLoss(t, kc.Brokers[0], topics.Hits, res)
	checkExact(t, s, res, 3*time.Minute)
	checkVisits(t, s, time.Minute)
	checkRecipientViews(t, s, faultCampaign, time.Minute)
}
