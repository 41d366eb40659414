//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/pixelpipe/pixelpipe/aggregator"
	"github.com/pixelpipe/pixelpipe/audit"
	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/edge"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/processor"
	"github.com/pixelpipe/pixelpipe/processor/state"
	"github.com/pixelpipe/pixelpipe/query"
)

const secret = "integration-secret"

// stack is a running pipeline on per-test topics and Redis keys.
type stack struct {
	t      *testing.T
	kc     kafkaconn.Config
	topics pipetest.Topics
	rdb    redis.UniversalClient
	prefix string
	logger *slog.Logger

	edgeURL, queryURL string
	// procGroup is the consumer group of the processors whose audit
	// checkAudit reads (the first one started).
	procGroup string
	wg        sync.WaitGroup
	cancels   []context.CancelFunc
}

func newStack(t *testing.T) *stack {
	t.Helper()
	kc, topics := pipetest.Kafka(t)
	rdb, prefix := pipetest.Redis(t)
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	s := &stack{
		t: t, kc: kc, topics: topics, rdb: rdb, prefix: prefix,
		logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
	// The test's temporary folders (the edge's spool) are removed after
	// the parts stopped, which makes the first TempDir call come first.
	_ = t.TempDir()
	t.Cleanup(s.stop)
	return s
}

// run starts r and stops it (and waits for it) on cleanup.
func (s *stack) run(name string, r interface{ Run(context.Context) error }) {
	s.runFunc(name, r.Run)
}

// serve serves srv on a free loopback port, stopped like run's, and
// returns the address.
func (s *stack) serve(name string, srv interface {
	Serve(context.Context, net.Listener) error
}) string {
	s.t.Helper()
	ln := pipetest.Listen(s.t)
	s.runFunc(name, func(ctx context.Context) error { return srv.Serve(ctx, ln) })
	return ln.Addr().String()
}

func (s *stack) runFunc(name string, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancels = append(s.cancels, cancel)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := run(ctx); err != nil {
			s.t.Errorf("%s: %v", name, err)
		}
	}()
}

func (s *stack) stop() {
	for i := len(s.cancels) - 1; i >= 0; i-- {
		s.cancels[i]()
	}
	s.wg.Wait()
}

func (s *stack) startEdge() { s.startEdgeWith(func(*edge.Config) {}) }

// startEdgeWith starts an edge on the stack's hits topic with edit applied
// to its config, sets the stack's edge URL, and returns the edge's address
// and metrics registry.
func (s *stack) startEdgeWith(edit func(*edge.Config)) (string, *prometheus.Registry) {
	s.t.Helper()
	cfg := edge.DefaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.NodeID = "it-edge"
	cfg.Spool.Dir = s.t.TempDir()
	cfg.VisitorSecret = secret
	edit(&cfg)
	reg := prometheus.NewRegistry()
	cfg.Kafka.Brokers, cfg.Kafka.Topic = s.kc.Brokers, s.topics.Hits
	e, err := edge.New(cfg, s.logger.With("component", "edge"), reg)
	if err != nil {
		s.t.Fatal(err)
	}
	addr := s.serve("edge", e)
	s.edgeURL = "http://" + addr
	return addr, reg
}

func (s *stack) startProcessor(group string) *prometheus.Registry {
	s.t.Helper()
	return s.startProcessorWith(group, nil)
}

// startProcessorWith is startProcessor with edit applied to its config.
func (s *stack) startProcessorWith(group string, edit func(*processor.Config)) *prometheus.Registry {
	s.t.Helper()
	p, reg := s.newProcessor(group, edit)
	s.run("processor", p)
	return reg
}

// newProcessor returns a processor of group on the stack's topics, its
// session state under the stack's Redis prefix; edit changes its config.
func (s *stack) newProcessor(group string, edit func(*processor.Config)) (*processor.Processor, *prometheus.Registry) {
	s.t.Helper()
	cfg := processor.DefaultConfig()
	cfg.Group = group
	cfg.HitsTopic, cfg.EventsTopic, cfg.SessionsTopic, cfg.DLQTopic = s.topics.Hits, s.topics.Events, s.topics.Sessions, s.topics.DLQ
	cfg.VisitorSecret = secret
	// No clock ticks unless the test asks for them (they add records to
	// the hits topic that tests of offsets would have to skip).
	cfg.ClockTick = 0
	if edit != nil {
		edit(&cfg)
	}
	l := s.logger.With("component", "processor")
	reg := prometheus.NewRegistry()
	if s.procGroup == "" {
		s.procGroup = group
	}
	p, err := processor.New(cfg, l, reg, processor.Deps{
		Reader:   kafkaconn.NewGroupReader(s.kc, cfg.HitsTopic, cfg.Group, l),
		Events:   kafkaconn.NewProducer(s.kc, cfg.EventsTopic),
		Sessions: kafkaconn.NewProducer(s.kc, cfg.SessionsTopic),
		DLQ:      kafkaconn.NewProducer(s.kc, cfg.DLQTopic),
		Clock:    kafkaconn.NewProducer(s.kc, cfg.HitsTopic),
		State:    state.New(s.rdb, s.prefix+":proc", cfg.SnapshotTTL),
		Hits:     kafkaconn.NewRanges(s.kc, cfg.HitsTopic, l),
		Audit:    audit.NewWriter(s.rdb, s.prefix, cfg.AuditRetention),
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return p, reg
}

func (s *stack) newAggregator(group string, reg *prometheus.Registry) *aggregator.Aggregator {
	return s.newAggregatorWith(group, reg, nil)
}

// newAggregatorWith is newAggregator with edit applied to its config.
func (s *stack) newAggregatorWith(group string, reg *prometheus.Registry, edit func(*aggregator.Config)) *aggregator.Aggregator {
	cfg := aggregator.DefaultConfig()
	cfg.Group = group
	cfg.EventsTopic, cfg.DLQTopic, cfg.CountsTopic = s.topics.Events, s.topics.DLQ, s.topics.Counts
	cfg.FlushInterval = 200 * time.Millisecond
	cfg.CommitDelay = time.Second
	cfg.DetailInterval = time.Second
	if edit != nil {
		edit(&cfg)
	}
	l := s.logger.With("component", "aggregator")
	a, err := aggregator.New(cfg, l, reg,
		func() *kafka.Reader { return kafkaconn.NewGroupReader(s.kc, cfg.EventsTopic, cfg.Group, l) },
		hllstore.New(s.rdb, hllstore.Config{Prefix: s.prefix}),
		aggregator.Outputs{DLQ: kafkaconn.NewWriter(s.kc, cfg.DLQTopic, l), Counts: kafkaconn.NewWriter(s.kc, cfg.CountsTopic, l),
			Idle: kafkaconn.NewGroupIdle(s.kc, cfg.EventsTopic, cfg.Group)})
	if err != nil {
		s.t.Fatal(err)
	}
	return a
}

func (s *stack) startAggregator(group string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	s.run("aggregator", s.newAggregator(group, reg))
	return reg
}

func (s *stack) startQuery() {
	cfg := query.DefaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.Token = "it-token"
	if s.procGroup != "" {
		cfg.AuditGroup = s.procGroup
	}
	q, err := query.New(cfg, s.logger, nil, counts.NewReader(hllstore.New(s.rdb, hllstore.Config{Prefix: s.prefix})), audit.NewReader(s.rdb, s.prefix))
	if err != nil {
		s.t.Fatal(err)
	}
	s.queryURL = "http://" + s.serve("query", q)
}

func (s *stack) stats(cid string) (query.StatsResponse, error) {
	var out query.StatsResponse
	day := time.Now().UTC().Format("2006-01-02")
	next := time.Now().UTC().Add(24 * time.Hour).Format("2006-01-02")
	err := s.getJSON("/v1/stats/"+cid+"?from="+day+"&to="+next, &out)
	return out, err
}

// getJSON asks the stack's query API for path with the operator token and
// decodes its 200 answer into out.
func (s *stack) getJSON(path string, out any) error {
	req, _ := http.NewRequest("GET", s.queryURL+path, nil)
	req.Header.Set("Authorization", "Bearer it-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// auditReport reads GET /v1/audit (the last hour) for the stack's
// processor group.
func (s *stack) auditReport() (query.AuditResponse, error) {
	var out query.AuditResponse
	err := s.getJSON("/v1/audit?group="+s.procGroup, &out)
	return out, err
}

// checkAudit waits until the completeness audit accounts for every hit:
// between lo and hi accepted (hits whose client got no answer may or may
// not have been accepted), all of them events and counted, none missing,
// none unchecked by number.
func checkAudit(t *testing.T, s *stack, lo, hi int, timeout time.Duration) {
	t.Helper()
	var last query.AuditResponse
	pipetest.Eventually(t, timeout, func() string {
		a, err := s.auditReport()
		if err != nil {
			return "audit: " + err.Error()
		}
		last = a
		switch {
		case a.Report == nil:
			return "audit: no report"
		case a.Missing != 0:
			return fmt.Sprintf("audit: %d missing, ranges %+v", a.Missing, a.Nodes)
		case a.Accepted < int64(lo) || a.Accepted > int64(hi):
			return fmt.Sprintf("audit: %d accepted, want %d to %d", a.Accepted, lo, hi)
		case a.Events != a.Accepted || a.Counted != a.Events:
			return fmt.Sprintf("audit: %d accepted, %d events, %d counted, %d not yet", a.Accepted, a.Events, a.Counted, a.NotYetCounted)
		case a.Unsequenced != 0:
			return fmt.Sprintf("audit: %d hits without a lane", a.Unsequenced)
		}
		return ""
	})
	t.Logf("audit: %d accepted, %d counted, %d missing, %d duplicates dropped, %d node(s)", last.Accepted, last.Counted, last.Missing, last.Duplicates, len(last.Nodes))
}

// counter returns the value of counter name with label result = result.
func counter(t *testing.T, reg prometheus.Gatherer, name, result string) float64 {
	t.Helper()
	return labelled(t, reg, name, "result", result)
}

// uniquesBound is how far a HyperLogLog estimate of n may be from n: four
// standard errors of a precision-14 sketch (0.81%), and at least 2 for the
// small cardinalities where sparse sketches are exact in practice.
func uniquesBound(n int) float64 {
	return math.Max(2, 4*0.0081*float64(n))
}

func deleteTopicNames(t *testing.T, broker string, names []string) {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 30 * time.Second}
	if _, err := client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: names}); err != nil {
		t.Logf("delete topics: %v", err)
	}
}
