//go:build integration

package integration

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/audit"
	"github.com/pixelpipe/pixelpipe/edge"
	"github.com/pixelpipe/pixelpipe/internal/loadgen"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// The fault tests (Kafka down, edge SIGTERM, edge kill -9) run shortened under
// `go test -tags integration`; `make test-faults` sets PIXEL_FAULT_FULL=1
// for the full-length versions (Kafka down 60 s, a minute of load with five
// kill -9 of the edge).
func faultFull() bool { return os.Getenv("PIXEL_FAULT_FULL") == "1" }

const faultRate = 200 // hits per second: modest, the machine is shared

// verifyNoLoss reads the whole raw topic and compares it with what the load
// generator was told: every acknowledged hit must be there, and nothing
// that was never sent; and the completeness audit's lanes (the numbers each
// edge gave its hits per partition) must have no gaps.
func verifyNoLoss(t *testing.T, broker, topic string, res *loadgen.Result) {
	t.Helper()
	found := map[int]int{}
	lanes := map[int]*audit.Partition{}
	for _, m := range pipetest.ReadTopicMessages(t, broker, topic) {
		var h pixelpb.RawHit
		if err := proto.Unmarshal(m.Value, &h); err != nil {
			t.Fatalf("raw topic holds an undecodable record: %v", err)
		}
		// The audit's view of the partition: every hit in its lane, the
		// lanes without gaps.
		if lanes[m.Partition] == nil {
			lanes[m.Partition] = audit.NewPartition(m.Partition)
		}
		o := h.GetOrigin()
		if tracked, _ := lanes[m.Partition].Check(&audit.Hit{Node: o.GetNodeId(), BootMs: o.GetBootMs(), Seq: o.GetSeq(), Lane: o.GetLane(), AtMs: o.GetReceivedAtMs()}); !tracked {
			t.Errorf("hit in partition %d without its lane: lane %d, seq %d", m.Partition, o.GetLane(), o.GetSeq())
		}
		seq, ok := loadgen.TagSeq(h.GetPageUrl(), "")
		if !ok {
			t.Fatalf("raw topic holds a hit the load generator did not send: page url %q", h.GetPageUrl())
		}
		found[seq]++
	}
	sent := map[int]bool{}
	for _, s := range res.AckedSeqs {
		sent[s] = true
	}
	failedFound := 0
	for _, s := range res.FailedSeqs {
		sent[s] = true
		if found[s] > 0 {
			failedFound++
		}
	}
	var missing []int
	for _, s := range res.AckedSeqs {
		if found[s] == 0 {
			missing = append(missing, s)
		}
	}
	dups := 0
	for s, n := range found {
		if !sent[s] {
			t.Errorf("phantom hit %d in the raw topic: never sent", s)
		}
		dups += n - 1
	}
	t.Logf("sent %d, acknowledged %d, not acknowledged %d (of which %d reached Kafka anyway); distinct in topic %d, duplicates %d; acknowledged but missing %d",
		res.Sent, res.Acked, res.Failed, failedFound, len(found), dups, len(missing))
	for part, p := range lanes {
		if n := p.Missing(); n != 0 {
			t.Errorf("the audit finds %d hits missing from the lanes of partition %d", n, part)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		t.Fatalf("LOST %d acknowledged hits, first: %v", len(missing), missing[:min(len(missing), 20)])
	}
}

// TestFaultKafkaDown is T-K1 (docs/test-catalogue.md): a private broker is killed (SIGKILL) for a
// while under load, then restarted. The edge must answer every request
// throughout, spool the hits, fail readiness only at its high-water mark,
// and deliver every acknowledged hit once Kafka is back.
func TestFaultKafkaDown(t *testing.T) {
	down := 8 * time.Second
	if faultFull() {
		down = 60 * time.Second
	}
	broker, kc, topics := pipetest.PrivateKafka(t)

	cfg := edge.DefaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.NodeID = "fault-kafka-down"
	cfg.VisitorSecret = secret
	cfg.Spool.Dir = t.TempDir()
	reg := prometheus.NewRegistry()
	logger := testLogger(t)
	cfg.Kafka.Brokers, cfg.Kafka.Topic = kc.Brokers, topics.Hits
	e, err := edge.New(cfg, logger.With("component", "edge"), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	ln := pipetest.Listen(t)
	go func() { runErr <- e.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("edge: %v", err)
		}
	}()

	lead := 3 * time.Second
	loadDone := make(chan *loadgen.Result, 1)
	go func() {
		res, err := loadgen.Run(context.Background(), loadgen.Config{
			BaseURL: "http://" + ln.Addr().String(), Rate: faultRate, Duration: lead + down + 4*time.Second, Workers: 4,
			Contents: 20, Visitors: 500, Seed: 11, Tag: true,
		})
		if err != nil {
			t.Error(err)
		}
		loadDone <- res
	}()

	time.Sleep(lead)
	t.Logf("killing the private broker (pid file in its run dir) for %s", down)
	broker.Kill(t)
	peak := 0.0
	for end := time.Now().Add(down); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		peak = max(peak, gauge(t, reg, "pixel_edge_spool_hits"))
	}
	if err := e.Ready(); err != nil {
		t.Errorf("edge not ready after %s of Kafka down with a 1 GiB spool: %v", down, err)
	}
	broker.Start(t)
	t.Logf("broker back; spool peaked at %.0f hits", peak)
	if peak < faultRate*float64(down/time.Second)/2 {
		t.Errorf("spool peaked at %.0f hits while Kafka was down %s at %d hits/s: the hits were not spooled", peak, down, faultRate)
	}
	res := <-loadDone
	if res.Failed != 0 {
		t.Errorf("edge failed %d of %d requests while Kafka was down (first: %v); it must always answer", res.Failed, res.Sent, res.FirstErr)
	}
	start := time.Now()
	pipetest.Eventually(t, 2*time.Minute, func() string {
		if n := gauge(t, reg, "pixel_edge_spool_hits"); n > 0 {
			return fmt.Sprintf("%.0f hits still in the spool", n)
		}
		return ""
	})
	t.Logf("spool drained %s after the load ended", time.Since(start).Round(time.Millisecond))
	if n := counter(t, reg, "pixel_edge_hits_total", "dropped"); n != 0 {
		t.Errorf("%v hits dropped", n)
	}
	verifyNoLoss(t, broker.Addr, topics.Hits, res)
}

// TestFaultEdgeSIGTERM is T-E1: the edge binary gets SIGTERM under load,
// must exit 0 within its drain bound, and a new edge on the same spool
// takes over; every acknowledged hit must reach Kafka.
func TestFaultEdgeSIGTERM(t *testing.T) {
	edgeRestarts(t, syscall.SIGTERM)
}

// TestFaultEdgeKill9 is T-E2: the edge binary is killed with SIGKILL under
// load, a new edge on the same spool takes over at once; every hit that got
// its answer must reach Kafka.
func TestFaultEdgeKill9(t *testing.T) {
	edgeRestarts(t, syscall.SIGKILL)
}

func edgeRestarts(t *testing.T, sig syscall.Signal) {
	kills, every := 1, 3*time.Second
	if faultFull() {
		kills, every = 5, 10*time.Second
	}
	bin := buildBinary(t)
	kc, topics := pipetest.Kafka(t)
	broker := kc.Brokers[0]
	port := strconv.Itoa(pipetest.FreePort(t))
	spoolDir := t.TempDir()
	env := []string{
		"PIXEL_KAFKA_BROKERS=" + broker,
		"PIXEL_KAFKA_TOPICPREFIX=" + strings.TrimSuffix(topics.Hits, schemas.TopicHits),
		"PIXEL_VISITOR_SECRET=" + secret,
		"PIXEL_ADMIN_LISTENADDR=127.0.0.1:0",
	}
	args := []string{"edge", "-edge.listenAddr=127.0.0.1:" + port, "-edge.spool.dir=" + spoolDir,
		"-edge.shutdownDelay=500ms", "-edge.drainTimeout=10s"}
	ed := start(t, bin, "edge-0", "edge serving", env, args...)
	addr := ed.waitAddr(t)

	loadDone := make(chan *loadgen.Result, 1)
	go func() {
		res, err := loadgen.Run(context.Background(), loadgen.Config{
			BaseURL: "http://" + addr, Rate: faultRate, Duration: time.Duration(kills+1) * every, Workers: 4,
			Contents: 20, Visitors: 500, Seed: 13, Tag: true,
		})
		if err != nil {
			t.Error(err)
		}
		loadDone <- res
	}()
	for i := range kills {
		time.Sleep(every)
		t0 := time.Now()
		if err := ed.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-ed.done:
			if sig == syscall.SIGTERM && err != nil {
				t.Errorf("edge exited with %v after SIGTERM, want 0", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("edge still running 20s after %v", sig)
		}
		t.Logf("edge-%d exited %s after %v", i, time.Since(t0).Round(time.Millisecond), sig)
		ed = start(t, bin, fmt.Sprintf("edge-%d", i+1), "edge serving", env, args...)
		ed.waitAddr(t)
	}
	res := <-loadDone
	if res.Acked == 0 {
		t.Fatalf("nothing acknowledged: %v", res.FirstErr)
	}
	// The last edge delivers what its predecessors left in the spool.
	ed.stop(t, 30*time.Second)
	verifyNoLoss(t, broker, topics.Hits, res)
}

func gauge(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			m := mf.GetMetric()[0]
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func testLogger(t *testing.T) *slog.Logger {
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
