package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/pixelpipe/pixelpipe/aggregator"
	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/edge"
	"github.com/pixelpipe/pixelpipe/edge/spool"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/admin"
	"github.com/pixelpipe/pixelpipe/internal/flagenv"
	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/processor"
	"github.com/pixelpipe/pixelpipe/query"
	"github.com/pixelpipe/pixelpipe/schemas"
)

func cmdEdge(ctx context.Context, args []string, stdout io.Writer) error {
	var c common
	cfg := edge.DefaultConfig()
	fs := newFlagSet("edge", "pixelpipe edge -kafka.brokers=kafka-1:9092 -visitor.secret=$SECRET -edge.listenAddr=:8080")
	c.bindLog(fs)
	c.bindAdmin(fs, ":9101")
	c.bindKafka(fs)
	c.bindVisitor(fs)
	bindEdge(fs, &cfg)
	clickKeys := flagenv.NewSecret("")
	fs.Var(clickKeys, "edge.click.keys", "HMAC-SHA256 keys of signed click URLs and signed pixels: KEY_ID:BASE64_KEY[,KEY_ID:BASE64_KEY...] (rotate by adding a new id, sign with it, drop the old one once its links expire); keys of at least 16 bytes")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.VisitorSecret = c.visitorSecret.Value()
	if err := parseClickKeys(clickKeys.Value(), &cfg); err != nil {
		return err
	}
	logger, err := newLogger(stdout, c.logLevel)
	if err != nil {
		return err
	}
	if err := c.kafka().Validate(); err != nil {
		return err
	}
	reg := newRegistry()
	srv, err := edge.New(cfg, logger.With("component", "edge"), reg, kafkaconn.NewWriter(c.kafka(), c.topic(schemas.TopicHits), logger.With("component", "edge.kafka")))
	if err != nil {
		return err
	}
	adm, err := admin.Listen(c.adminAddr, reg, logger)
	if err != nil {
		return err
	}
	adm.AddReadyCheck(srv.Ready)
	return serve(ctx, logger, adm, srv)
}

func bindEdge(fs interface {
	StringVar(*string, string, string, string)
	IntVar(*int, string, int, string)
	Int64Var(*int64, string, int64, string)
	Float64Var(*float64, string, float64, string)
	DurationVar(*time.Duration, string, time.Duration, string)
	Func(string, string, func(string) error)
	BoolVar(*bool, string, bool, string)
}, cfg *edge.Config) {
	fs.StringVar(&cfg.ListenAddr, "edge.listenAddr", cfg.ListenAddr, "public pixel address, host:port")
	fs.StringVar(&cfg.NodeID, "edge.nodeID", cfg.NodeID, "name of this edge in every hit (completeness audits); default the host name")
	fs.StringVar(&cfg.Spool.Dir, "edge.spool.dir", cfg.Spool.Dir, "disk spool folder: every hit is written here before it is answered, and delivered to Kafka from here; put it on a volume that outlives the process (one edge per folder)")
	fs.Int64Var(&cfg.Spool.MaxBytes, "edge.spool.maxBytes", cfg.Spool.MaxBytes, "bound on spooled hits not yet acknowledged by Kafka, in bytes (≈300 bytes per hit); past it hits are answered but dropped, counted in pixel_edge_hits_total{result=\"dropped\"}")
	fs.Int64Var(&cfg.Spool.SegmentBytes, "edge.spool.segmentBytes", cfg.Spool.SegmentBytes, "size of one spool segment file; delivered segments are deleted whole")
	fs.Float64Var(&cfg.Spool.HighWater, "edge.spool.highWater", cfg.Spool.HighWater, "fraction of edge.spool.maxBytes from which /readyz fails, so load balancers move traffic before hits are dropped")
	fs.Func("edge.spool.sync", "durability of an answered hit: \"write\" (default) = written to the spool file before the answer, survives kill -9 of the edge, an OS crash or power loss can lose up to edge.spool.fsyncInterval of hits; \"always\" = fsynced before the answer (group commit), survives power loss, adds the disk's fsync latency to every answer", func(v string) error {
		m, err := spool.ParseSyncMode(v)
		cfg.Spool.Sync = m
		return err
	})
	fs.DurationVar(&cfg.Spool.FsyncInterval, "edge.spool.fsyncInterval", cfg.Spool.FsyncInterval, "with edge.spool.sync=write, how often the spool is fsynced; 0 = only when a segment is full and at shutdown")
	fs.IntVar(&cfg.BatchSize, "edge.batchSize", cfg.BatchSize, "most hits per Kafka write")
	fs.DurationVar(&cfg.BatchWait, "edge.batchWait", cfg.BatchWait, "how long a Kafka batch waits to fill after its first hit")
	fs.DurationVar(&cfg.ShutdownDelay, "edge.shutdownDelay", cfg.ShutdownDelay, "keep answering this long after SIGTERM with /readyz failing, so load balancers stop sending first; set above the readiness probe period")
	fs.DurationVar(&cfg.DrainTimeout, "edge.drainTimeout", cfg.DrainTimeout, "bound on finishing in-flight requests and on delivering the spool to Kafka at shutdown; what is left stays in the spool for the next start")
	fs.IntVar(&cfg.MaxHeaderBytes, "edge.maxHeaderBytes", cfg.MaxHeaderBytes, "bound on request line plus headers; larger requests get 431")
	fs.IntVar(&cfg.MaxBodyBytes, "edge.maxBodyBytes", cfg.MaxBodyBytes, "bound on a request body (batch POSTs to /e); larger bodies get 413 and the connection is closed")
	fs.IntVar(&cfg.MaxConns, "edge.maxConns", cfg.MaxConns, "connections served at once; past it new connections get 503 and are closed")
	fs.DurationVar(&cfg.ReadTimeout, "edge.readTimeout", cfg.ReadTimeout, "a request (line, headers and body) must arrive within this after the connection opened or went active; slower ones get 408 and are closed (slowloris)")
	fs.DurationVar(&cfg.WriteTimeout, "edge.writeTimeout", cfg.WriteTimeout, "bound on writing an answer")
	fs.DurationVar(&cfg.IdleTimeout, "edge.idleTimeout", cfg.IdleTimeout, "how long a keep-alive connection may wait for its next request")
	fs.IntVar(&cfg.MaxConnsPerIP, "edge.maxConnsPerIP", cfg.MaxConnsPerIP, "concurrent connections per client IP (the TCP peer: the load balancer when there is one); past it 429 and close; 0 = no limit")
	fs.Func("edge.trustedProxies", "comma-separated CIDRs of the load balancers in front of the edge; when the TCP peer is one, the client IP is the rightmost X-Forwarded-For hop outside them, else X-Forwarded-For is ignored", func(v string) error {
		cfg.TrustedProxies = nil
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			pr, err := netip.ParsePrefix(p)
			if err != nil {
				return err
			}
			cfg.TrustedProxies = append(cfg.TrustedProxies, pr.Masked())
		}
		return nil
	})
	fs.Func("edge.click.allowHosts", "hosts clicks may redirect to without a signature, per site: SITE:HOST[,SITE:HOST...]; SITE * means every site, HOST .example.com allows its subdomains; anything else gets 400 (pixel_edge_invalid_clicks_total)", func(v string) error {
		cfg.ClickAllowHosts = map[string][]string{}
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e == "" {
				continue
			}
			site, host, ok := strings.Cut(e, ":")
			if !ok || site == "" || host == "" {
				return fmt.Errorf("%q is not SITE:HOST", e)
			}
			cfg.ClickAllowHosts[site] = append(cfg.ClickAllowHosts[site], strings.ToLower(host))
		}
		return nil
	})
	fs.BoolVar(&cfg.HonourGPC, "edge.honourGPC", cfg.HonourGPC, "drop a hit's explicit id and cookie when it carries Sec-GPC: 1 (it is still counted, cookieless)")
	fs.BoolVar(&cfg.HonourDNT, "edge.honourDNT", cfg.HonourDNT, "the same for DNT: 1")
	fs.StringVar(&cfg.OptOutCookie, "edge.optOutCookie", cfg.OptOutCookie, "name of the cookie /optout sets; hits carrying it are answered and not recorded (pixel_edge_hits_total{result=\"opted_out\"})")
	fs.BoolVar(&cfg.IssueVisitorCookie, "edge.issueVisitorCookie", cfg.IssueVisitorCookie, "set a visitor cookie (random 128-bit id; Secure; HttpOnly; SameSite=None) on answers to browsers without one, only when consent allows: not with gdpr=1 and no gdpr_consent, not with Sec-GPC/DNT when honoured, not when opted out; off = cookieless visitors")
	fs.StringVar(&cfg.VisitorCookie, "edge.visitorCookie", cfg.VisitorCookie, "name of the visitor cookie the edge reads (and sets with edge.issueVisitorCookie)")
	fs.DurationVar(&cfg.VisitorCookieTTL, "edge.visitorCookieTTL", cfg.VisitorCookieTTL, "Max-Age of the visitor cookie")
	fs.StringVar(&cfg.CookieDomain, "edge.cookieDomain", cfg.CookieDomain, "Domain attribute of the cookies the edge sets; empty = the requested host")
}

func parseClickKeys(v string, cfg *edge.Config) error {
	for _, e := range strings.Split(v, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		kid, b64, ok := strings.Cut(e, ":")
		key, err := base64.StdEncoding.DecodeString(b64)
		if !ok || kid == "" || err != nil {
			return fmt.Errorf("edge.click.keys: an entry for key id %q is not KEY_ID:BASE64_KEY", kid)
		}
		if cfg.ClickKeys == nil {
			cfg.ClickKeys = map[string][]byte{}
		}
		cfg.ClickKeys[kid] = key
	}
	return nil
}

func cmdProcessor(ctx context.Context, args []string, stdout io.Writer) error {
	var c common
	cfg := processor.DefaultConfig()
	fs := newFlagSet("processor", "pixelpipe processor -kafka.brokers=kafka-1:9092 -visitor.secret=$SECRET")
	c.bindLog(fs)
	c.bindAdmin(fs, ":9102")
	c.bindKafka(fs)
	c.bindVisitor(fs)
	bindProcessor(fs, &cfg)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.VisitorSecret = c.visitorSecret.Value()
	cfg.HitsTopic, cfg.EventsTopic, cfg.DLQTopic = c.topic(schemas.TopicHits), c.topic(schemas.TopicEvents), c.topic(schemas.TopicDLQ)
	logger, err := newLogger(stdout, c.logLevel)
	if err != nil {
		return err
	}
	if err := c.kafka().Validate(); err != nil {
		return err
	}
	reg := newRegistry()
	p, err := newProcessor(c.kafka(), cfg, logger, reg)
	if err != nil {
		return err
	}
	adm, err := admin.Listen(c.adminAddr, reg, logger)
	if err != nil {
		return err
	}
	return serve(ctx, logger, adm, p)
}

func bindProcessor(fs interface {
	StringVar(*string, string, string, string)
	IntVar(*int, string, int, string)
	DurationVar(*time.Duration, string, time.Duration, string)
}, cfg *processor.Config) {
	fs.StringVar(&cfg.Group, "processor.group", cfg.Group, "Kafka consumer group of the processors")
	fs.IntVar(&cfg.MaxBatch, "processor.maxBatch", cfg.MaxBatch, "most hits per write and commit")
	fs.DurationVar(&cfg.MaxWait, "processor.maxWait", cfg.MaxWait, "how long a batch waits to fill")
}

func newProcessor(kc kafkaconn.Config, cfg processor.Config, logger *slog.Logger, reg prometheus.Registerer) (*processor.Processor, error) {
	l := logger.With("component", "processor")
	return processor.New(cfg, l, reg,
		kafkaconn.NewGroupReader(kc, cfg.HitsTopic, cfg.Group, l),
		kafkaconn.NewWriter(kc, cfg.EventsTopic, l),
		kafkaconn.NewWriter(kc, cfg.DLQTopic, l))
}

func cmdAggregator(ctx context.Context, args []string, stdout io.Writer) error {
	var c common
	cfg := aggregator.DefaultConfig()
	fs := newFlagSet("aggregator", "pixelpipe aggregator -kafka.brokers=kafka-1:9092 -redis.addr=redis:6379")
	c.bindLog(fs)
	c.bindAdmin(fs, ":9103")
	c.bindKafka(fs)
	c.bindRedis(fs)
	bindAggregator(fs, &cfg)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.EventsTopic = c.topic(schemas.TopicEvents)
	logger, err := newLogger(stdout, c.logLevel)
	if err != nil {
		return err
	}
	if err := c.kafka().Validate(); err != nil {
		return err
	}
	rdb := newRedis(c.redisAddr)
	defer rdb.Close()
	reg := newRegistry()
	a, err := newAggregator(c.kafka(), cfg, hllstore.New(rdb, hllstore.Config{Prefix: c.redisPrefix}), c.topic(schemas.TopicDLQ), c.topic(schemas.TopicCounts), logger, reg)
	if err != nil {
		return err
	}
	adm, err := admin.Listen(c.adminAddr, reg, logger)
	if err != nil {
		return err
	}
	return serve(ctx, logger, adm, a)
}

func bindAggregator(fs interface {
	StringVar(*string, string, string, string)
	IntVar(*int, string, int, string)
	DurationVar(*time.Duration, string, time.Duration, string)
}, cfg *aggregator.Config) {
	fs.StringVar(&cfg.Group, "aggregator.group", cfg.Group, "Kafka consumer group of the aggregators")
	fs.DurationVar(&cfg.FlushInterval, "aggregator.flushInterval", cfg.FlushInterval, "how often counts are written to Redis and offsets committed; bounds how stale queries are")
	fs.IntVar(&cfg.MaxBatch, "aggregator.maxBatch", cfg.MaxBatch, "most events applied between two flushes")
	fs.DurationVar(&cfg.IdleEvict, "aggregator.idleEvict", cfg.IdleEvict, "drop clean in-memory counts not touched for this long (reloaded from Redis when needed)")
	fs.DurationVar(&cfg.CommitDelay, "aggregator.commitDelay", cfg.CommitDelay, "how long offsets wait after their flush before they are committed; keep it above the window in which Redis can lose acknowledged writes (appendfsync everysec: ~2s)")
	fs.DurationVar(&cfg.LateHorizon, "aggregator.lateHorizon", cfg.LateHorizon, "events older than this (by event time) are not counted: they go to the dead-letter topic and pixel_aggregator_events_total{result=\"late\"}")
	fs.DurationVar(&cfg.SnapshotInterval, "aggregator.snapshotInterval", cfg.SnapshotInterval, "how often changed counts are published to the compacted counts topic; 0 disables")
}

func newAggregator(kc kafkaconn.Config, cfg aggregator.Config, store *hllstore.Store, dlqTopic, countsTopic string, logger *slog.Logger, reg prometheus.Registerer) (*aggregator.Aggregator, error) {
	l := logger.With("component", "aggregator")
	open := func() *kafka.Reader { return kafkaconn.NewGroupReader(kc, cfg.EventsTopic, cfg.Group, l) }
	return aggregator.New(cfg, l, reg, open, store, aggregator.Outputs{
		DLQ:    kafkaconn.NewWriter(kc, dlqTopic, l),
		Counts: kafkaconn.NewWriter(kc, countsTopic, l),
	})
}

// newRedis returns a client whose context deadlines apply to socket I/O, so
// shutdown deadlines hold. Its retries are harmless: every count write is
// absolute and position-guarded (hllstore).
func newRedis(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  addr,
		ContextTimeoutEnabled: true,
		DialTimeout:           5 * time.Second,
		ReadTimeout:           5 * time.Second,
		WriteTimeout:          5 * time.Second,
	})
}

func cmdQuery(ctx context.Context, args []string, stdout io.Writer) error {
	var c common
	cfg := query.DefaultConfig()
	token := flagenv.NewSecret("")
	fs := newFlagSet("query", "pixelpipe query -redis.addr=redis:6379 -query.token=$TOKEN; curl -H 'Authorization: Bearer $TOKEN' localhost:8081/v1/stats/article-7?from=2026-11-01&to=2026-12-01")
	c.bindLog(fs)
	c.bindAdmin(fs, ":9104")
	c.bindRedis(fs)
	fs.StringVar(&cfg.ListenAddr, "query.listenAddr", cfg.ListenAddr, "API address, host:port")
	fs.Var(token, "query.token", "bearer token required on every request; empty = no authentication (only for private networks)")
	fs.IntVar(&cfg.MaxRangeDays, "query.maxRangeDays", cfg.MaxRangeDays, "longest range a query may ask for, in days")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.Token = token.Value()
	logger, err := newLogger(stdout, c.logLevel)
	if err != nil {
		return err
	}
	rdb := newRedis(c.redisAddr)
	defer rdb.Close()
	srv, err := query.New(cfg, logger.With("component", "query"), counts.NewReader(hllstore.New(rdb, hllstore.Config{Prefix: c.redisPrefix})))
	if err != nil {
		return err
	}
	adm, err := admin.Listen(c.adminAddr, newRegistry(), logger)
	if err != nil {
		return err
	}
	return serve(ctx, logger, adm, srv)
}

func cmdTopics(ctx context.Context, args []string, stdout io.Writer) error {
	var c common
	fs := newFlagSet("topics", "pixelpipe topics -kafka.brokers=127.0.0.1:19092")
	c.bindKafka(fs)
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := c.kafka().Validate(); err != nil {
		return err
	}
	tctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := kafkaconn.EnsureTopics(tctx, c.kafka(), c.topicSpecs()); err != nil {
		return err
	}
	for _, t := range c.topicSpecs() {
		fmt.Fprintf(stdout, "topic %s ready (%d partitions)\n", t.Name, t.Partitions)
	}
	return nil
}
