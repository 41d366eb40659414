//go:build devmode

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/pixelpipe/pixelpipe/aggregator"
	"github.com/pixelpipe/pixelpipe/audit"
	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/edge"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/admin"
	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/lease"
	"github.com/pixelpipe/pixelpipe/internal/redisconn"
	"github.com/pixelpipe/pixelpipe/processor"
	"github.com/pixelpipe/pixelpipe/query"
	"github.com/pixelpipe/pixelpipe/schemas"
)

// devClickKey signs the demo's clicks and pixels: dev mode only.
const devClickKey = "pixelpipe-dev-only-signing-key-0"

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
	kafkaPort := fs.Int("dev.kafkaPort", 9092, "port of the embedded Kafka broker (the default of `pixelpipe tail`); when it is taken, a free one; 0 always picks a free one")
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

	brokerCfg := kfake.BrokerConfigs(map[string]string{"log.retention.bytes": strconv.FormatInt(*retention, 10)})
	cluster, err := kfake.NewCluster(kfake.Ports(*kafkaPort), brokerCfg)
	if err != nil && *kafkaPort != 0 {
		cluster, err = kfake.NewCluster(kfake.Ports(0), brokerCfg) // the port is taken
	}
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

	// Dev-only secrets, printed in the banner: never use them elsewhere.
	ecfg.NodeID = "dev"
	ecfg.VisitorSecret = "dev-only-secret"
	ecfg.ClickKeys = map[string][]byte{"dev": []byte(devClickKey)}
	ecfg.IssueVisitorCookie = true
	pcfg := processor.DefaultConfig()
	pcfg.VisitorSecret = ecfg.VisitorSecret
	pcfg.SignedPixels = demoAd + "=prefer"
	// The demo's recipients are shown by their uids (dev only: by default
	// events carry recipients as keyed hashes only).
	pcfg.RecipientIDs = "*"
	// Visits end a minute after their visitor's last hit, not thirty, and
	// the clock ticks every 10 s, so the dashboard shows visits within
	// about a minute and a half of the first hits.
	pcfg.Session.Timeout, pcfg.ClockTick = time.Minute, 10*time.Second
	acfg := aggregator.DefaultConfig()

	reg := newRegistry()
	rdb := newRedis(redisconn.Addr{Addrs: []string{mr.Addr()}})
	defer rdb.Close()
	store := hllstore.New(rdb, hllstore.Config{HourRetention: acfg.HourRetention, DayRetention: acfg.DayRetention, RecipientRetention: acfg.RecipientRetention, RecipientRetentionFor: acfg.RecipientRetentionFor})
	ecfg.Kafka.Brokers = kc.Brokers
	ed, err := edge.New(ecfg, logger.With("component", "edge"), reg)
	if err != nil {
		return err
	}
	proc, err := newProcessor(kc, pcfg, rdb, "pp", logger, reg)
	if err != nil {
		return err
	}
	agg, err := newAggregator(kc, acfg, store, logger, reg)
	if err != nil {
		return err
	}
	rollups, err := aggregator.NewRollups(acfg, logger.With("component", "rollup"), reg, store, lease.New(rdb, "pp"))
	if err != nil {
		return err
	}
	qcfg.VisitorSecret = ecfg.VisitorSecret
	qs, err := query.New(qcfg, logger.With("component", "query"), reg, counts.NewReader(store), audit.NewReader(rdb, "pp"))
	if err != nil {
		return err
	}
	qs.SetEraser(store)
	adm, err := admin.Listen(c.adminAddr, reg, logger)
	if err != nil {
		return err
	}
	// Bound here, so the banner can name the ports.
	edLn, err := net.Listen("tcp", ecfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen on edge address %s: %w", ecfg.ListenAddr, err)
	}
	qsLn, err := net.Listen("tcp", qcfg.ListenAddr)
	if err != nil {
		_ = edLn.Close()
		return fmt.Errorf("listen on query address %s: %w", qcfg.ListenAddr, err)
	}
	qsAddr := qsLn.Addr().String()

	edgeURL := "http://" + edLn.Addr().String()
	pixelURL := edgeURL + "/p.gif?cid=content-0&uid=alice"
	clickURL := edgeURL + "/c?" + url.Values{"cid": {demoAd}, "u": {"https://shop.example.com/sale"}, "kid": {"dev"},
		"sig": {edge.SignClick([]byte(devClickKey), demoAd, "https://shop.example.com/sale", 0)}}.Encode()
	kafkaFlag := ""
	if kc.Brokers[0] != "127.0.0.1:9092" {
		kafkaFlag = " -kafka.brokers=" + kc.Brokers[0]
	}
	fmt.Fprintf(stdout, `pixelpipe dev: every part in one process, on an embedded Kafka broker (%s) and Redis (%s)

  pixel:     %s
  click:     %s
  dashboard: http://%s/?cid=content-0,content-1,%s,%s,%s&range=24h
  stats:     http://%s/v1/stats/content-0
  metrics:   http://%s/metrics

  Dev-only settings, for trying things out (never use them elsewhere): the query API is open (no
  token; in production give -query.tokens), the click and pixel signing key is %q under key id
  "dev", the visitor secret is %q, visitor cookies are issued, %s's unsigned pixels are
  counted under the "prefer" signing policy, a visit ends after 1 minute without a hit
  (30 minutes by default), so visits show within about a minute and a half, and recipients
  are shown by their uids (-processor.recipientIDs=*; by default by keyed hashes only).

  Sending %.0f demo hits/s: views of %d articles by %d visitors with their referrers, signed
  ad impressions and clicks (%s), conversions (%s), newsletter opens by people and mail proxies
  and clicks on its links (%s, campaign december), and a crawler. Watch the counts move:
    curl -s http://%s/v1/stats/content-0
    pixelpipe stats %s
    pixelpipe recipients -campaign=december -filter=clicked
    pixelpipe tail%s events
  A plain curl counts as a bot (its user agent, missing browser headers); to be counted as a person:
    curl -s -o /dev/null -A 'Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0' -H 'Accept: image/*' -H 'Accept-Language: en' -H 'Accept-Encoding: gzip' -H 'Sec-Fetch-Mode: no-cors' '%s'
  Ctrl-C stops.

`, kc.Brokers[0], mr.Addr(), pixelURL, clickURL, qsAddr, demoAd, demoShop, demoNewsletter, qsAddr, adm.Addr(),
		devClickKey, ecfg.VisitorSecret, demoAd, *demoRate, *demoContents, *demoVisitors, demoAd, demoShop, demoNewsletter,
		qsAddr, demoShop, kafkaFlag, pixelURL)

	parts := []runner{listened{ed, edLn}, proc, agg, rollups, listened{qs, qsLn}, retentionLoop{cluster}}
	if *demoRate > 0 {
		parts = append(parts, demoTraffic{
			edgeURL: edgeURL, rate: *demoRate, contents: *demoContents, visitors: *demoVisitors,
			clickKey: []byte(devClickKey), logger: logger,
		})
	}
	return serve(ctx, logger, adm, parts...)
}

// listened is a server that serves on a listener bound beforehand, so the dev
// banner can name its address before the parts run.
type listened struct {
	srv interface {
		Serve(ctx context.Context, ln net.Listener) error
	}
	ln net.Listener
}

func (l listened) Run(ctx context.Context) error { return l.srv.Serve(ctx, l.ln) }

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
