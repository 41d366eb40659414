package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/pixelpipe/pixelpipe/aggregator"
	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/edge"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/admin"
	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/loadgen"
	"github.com/pixelpipe/pixelpipe/processor"
	"github.com/pixelpipe/pixelpipe/query"
	"github.com/pixelpipe/pixelpipe/schemas"
)

// cmdDev runs every part in one process on an in-process Kafka-protocol
// broker (franz-go's kfake) and an in-process Redis (miniredis). It is for
// trying pixelpipe out; nothing it holds survives the process, and tests use
// real Kafka and Redis instead.
func cmdDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	ecfg := edge.DefaultConfig()
	ecfg.ListenAddr = "127.0.0.1:8080"
	ecfg.DrainTimeout = 5 * time.Second
	ecfg.Spool.Dir = filepath.Join(os.TempDir(), "pixelpipe-dev-spool")
	qcfg := query.DefaultConfig()
	fs := newFlagSet("dev", "", "pixelpipe dev -demo.rate=20")
	c.bindLog(fs)
	fs.StringVar(&ecfg.ListenAddr, "edge.listenAddr", ecfg.ListenAddr, "pixel address")
	fs.StringVar(&ecfg.Spool.Dir, "edge.spool.dir", ecfg.Spool.Dir, "disk spool folder of the edge (one running edge per folder)")
	fs.StringVar(&qcfg.ListenAddr, "query.listenAddr", "127.0.0.1:8081", "stats API address")
	fs.StringVar(&c.adminAddr, "admin.listenAddr", "127.0.0.1:9100", "metrics and health address")
	kafkaPort := fs.Int("dev.kafkaPort", 0, "port of the embedded Kafka broker; 0 picks a free one")
	retention := fs.Int64("dev.retentionBytes", 32<<20, "bytes the embedded broker keeps per partition; older records are discarded (it keeps everything in memory)")
	demoRate := fs.Float64("demo.rate", 20, "demo hits per second sent to the edge; 0 = none")
	demoContents := fs.Int("demo.contents", 5, "demo content ids")
	demoVisitors := fs.Int("demo.visitors", 300, "demo visitors")
	c.logLevel = "warn"
	fs.Lookup("log.level").DefValue = "warn"
	if err := parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	logger, err := newLogger(stdout, c.logLevel)
	if err != nil {
		return err
	}

	cluster, err := kfake.NewCluster(
		kfake.Ports(*kafkaPort),
		kfake.BrokerConfigs(map[string]string{"log.retention.bytes": strconv.FormatInt(*retention, 10)}),
	)
	if err != nil {
		return fmt.Errorf("start embedded kafka broker: %w", err)
	}
	defer cluster.Close()
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return fmt.Errorf("start embedded redis: %w", err)
	}
	defer mr.Close()

	kc := kafkaconn.Config{Brokers: cluster.ListenAddrs()}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	// One process reads everything: one partition per topic, so each topic's
	// one partition reports a freshness watermark as soon as a hit flows
	// (with six, a partition no demo content id hashes to would keep the
	// watermark "partial").
	topics := schemas.Topics()
	for i := range topics {
		topics[i].Partitions = 1
	}
	qcfg.EventsPartitions = 1
	err = kafkaconn.EnsureTopics(tctx, kc, topics)
	cancel()
	if err != nil {
		return err
	}

	ecfg.NodeID = "dev"
	ecfg.VisitorSecret = "dev-only-secret"
	pcfg := processor.DefaultConfig()
	pcfg.VisitorSecret = ecfg.VisitorSecret
	acfg := aggregator.DefaultConfig()

	reg := newRegistry()
	rdb := newRedis(mr.Addr())
	defer rdb.Close()
	store := hllstore.New(rdb, hllstore.Config{})
	hitsWriter := kafkaconn.NewWriter(kc, schemas.TopicHits, logger)
	ed, err := edge.New(ecfg, logger.With("component", "edge"), reg, hitsWriter)
	if err != nil {
		return err
	}
	proc, err := newProcessor(kc, pcfg, rdb, "pp", logger, reg)
	if err != nil {
		return err
	}
	agg, err := newAggregator(kc, acfg, store, schemas.TopicDLQ, schemas.TopicCounts, logger, reg)
	if err != nil {
		return err
	}
	rollups, err := aggregator.NewRollups(acfg, logger.With("component", "rollup"), reg, store)
	if err != nil {
		return err
	}
	qs, err := query.New(qcfg, logger.With("component", "query"), reg, counts.NewReader(store))
	if err != nil {
		return err
	}
	adm, err := admin.Listen(c.adminAddr, reg, logger)
	if err != nil {
		return err
	}

	pixelURL := "http://" + ed.Addr() + "/p.gif?cid=content-0&uid=alice"
	fmt.Fprintf(stdout, `pixelpipe dev: every part in one process, on an embedded Kafka broker (%s) and Redis (%s)

  pixel:     %s
  dashboard: http://%s/?cid=content-0,content-1,content-2&range=24h
  stats:     http://%s/v1/stats/content-0
  metrics:   http://%s/metrics

  Sending %.0f demo hits/s over %d content ids and %d visitors; watch the stats move:
    curl -s http://%s/v1/stats/content-0
  Ctrl-C stops.

`, kc.Brokers[0], mr.Addr(), pixelURL, qs.Addr(), qs.Addr(), adm.Addr(), *demoRate, *demoContents, *demoVisitors, qs.Addr())

	parts := []runner{ed, proc, agg, rollups, qs, retentionLoop{cluster}}
	if *demoRate > 0 {
		parts = append(parts, demo{
			cfg: loadgen.Config{
				BaseURL: "http://" + ed.Addr(), Rate: *demoRate, Duration: 24 * time.Hour,
				Workers: 2, Contents: *demoContents, Zipf: true, Visitors: *demoVisitors, Seed: uint64(time.Now().UnixNano()),
			},
			logger: logger,
		})
	}
	return serve(ctx, logger, adm, parts...)
}

// retentionLoop applies the embedded broker's retention every few seconds,
// which bounds the memory it holds.
type retentionLoop struct{ c *kfake.Cluster }

func (r retentionLoop) Run(ctx context.Context) error {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.c.ApplyRetention()
		}
	}
}

// demo sends demo traffic until stopped.
type demo struct {
	cfg    loadgen.Config
	logger *slog.Logger
}

func (d demo) Run(ctx context.Context) error {
	// Give the consumer groups a moment to form before the first hits.
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(time.Second):
	}
	res, err := loadgen.Run(ctx, d.cfg)
	if err != nil {
		return err
	}
	if res.FirstErr != nil {
		d.logger.Warn("demo traffic had failures", "failed", res.Failed, "err", res.FirstErr)
	}
	return nil
}
