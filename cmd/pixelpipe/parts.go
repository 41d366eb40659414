package main

import (
	"context"
	"encoding/base64"
	"flag"
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
	"github.com/pixelpipe/pixelpipe/audit"
	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/edge"
	"github.com/pixelpipe/pixelpipe/edge/spool"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/admin"
	"github.com/pixelpipe/pixelpipe/internal/flagenv"
	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/lease"
	"github.com/pixelpipe/pixelpipe/internal/redisconn"
	"github.com/pixelpipe/pixelpipe/processor"
	"github.com/pixelpipe/pixelpipe/processor/state"
	"github.com/pixelpipe/pixelpipe/query"
	"github.com/pixelpipe/pixelpipe/schemas"
)

func cmdEdge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	cfg := edge.DefaultConfig()
	fs := newFlagSet("edge", "", "pixelpipe edge -kafka.brokers=kafka-1:9092 -visitor.secret=$SECRET -edge.listenAddr=:8080")
	c.bindLog(fs)
	c.bindAdmin(fs, ":9101")
	c.bindKafka(fs)
	c.bindVisitor(fs)
	bindEdge(fs, &cfg)
	clickKeys := flagenv.NewSecret("")
	fs.Var(clickKeys, "edge.click.keys", "HMAC-SHA256 keys of signed click URLs and signed pixels: KEY_ID:BASE64_KEY[,KEY_ID:BASE64_KEY...] (rotate by adding a new id, sign with it, drop the old one once its links expire); keys of at least 16 bytes")
	if err := parse(fs, args, stdout, stderr); err != nil {
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
	cfg.Kafka.Brokers, cfg.Kafka.Topic = c.kafka().Brokers, c.topic(schemas.TopicHits)
	srv, err := edge.New(cfg, logger.With("component", "edge"), reg)
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
	fs.BoolVar(&cfg.Pseudonymise, "edge.pseudonymise", cfg.Pseudonymise, "record the client IP cut to /24 (IPv4) or /48 (IPv6) and the visitor cookie and uid as keyed hashes, so pixel.hits.v1 holds no direct identifier (costs city-level geo accuracy; see the README)")
	fs.BoolVar(&cfg.HonourGPC, "edge.honourGPC", cfg.HonourGPC, "drop a hit's explicit id and cookie when it carries Sec-GPC: 1 (it is still counted, cookieless)")
	fs.BoolVar(&cfg.HonourDNT, "edge.honourDNT", cfg.HonourDNT, "the same for DNT: 1")
	fs.IntVar(&cfg.ConsentVendorID, "edge.consent.vendorID", cfg.ConsentVendorID, "this deployment's IAB Global Vendor List id: with gdpr=1 a hit has consent (cookie set and read, identifiers kept) only when gdpr_consent is a valid TCF v2 string consenting to purpose 1 and to this vendor; 0 = purpose 1 only; refusals are counted in pixel_edge_consent_refused_total")
	fs.IntVar(&cfg.RateFlag, "edge.rate.flag", cfg.RateFlag, "hits per second from one client IP above which hits are recorded flagged, and counted downstream as bot traffic with reason \"rate\" (pixel_edge_rate_limited_total{action=\"flagged\"}); 0 = off; behind a load balancer needs edge.trustedProxies; see edge.rate.shed")
	fs.IntVar(&cfg.RateShed, "edge.rate.shed", cfg.RateShed, "hits per second from one client IP above which hits are still answered but not recorded (pixel_edge_rate_limited_total{action=\"shed\"}); 0 = never; at or above edge.rate.flag")
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

func cmdProcessor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	cfg := processor.DefaultConfig()
	fs := newFlagSet("processor", "", "pixelpipe processor -kafka.brokers=kafka-1:9092 -redis.addr=redis:6379 -visitor.secret=$SECRET -processor.geoCityDB=/data/GeoLite2-City.mmdb")
	c.bindLog(fs)
	c.bindAdmin(fs, ":9102")
	c.bindKafka(fs)
	c.bindRedis(fs)
	c.bindVisitor(fs)
	bindProcessor(fs, &cfg)
	if err := parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	cfg.VisitorSecret = c.visitorSecret.Value()
	cfg.HitsTopic, cfg.EventsTopic, cfg.SessionsTopic, cfg.DLQTopic = c.topic(schemas.TopicHits), c.topic(schemas.TopicEvents), c.topic(schemas.TopicSessions), c.topic(schemas.TopicDLQ)
	logger, err := newLogger(stdout, c.logLevel)
	if err != nil {
		return err
	}
	if err := c.kafka().Validate(); err != nil {
		return err
	}
	addr, err := c.redis()
	if err != nil {
		return err
	}
	rdb := newRedis(addr)
	defer rdb.Close()
	reg := newRegistry()
	p, err := newProcessor(c.kafka(), cfg, rdb, c.redisPrefix, logger, reg)
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
	BoolVar(*bool, string, bool, string)
}, cfg *processor.Config) {
	fs.StringVar(&cfg.Group, "processor.group", cfg.Group, "Kafka consumer group of the processors; session and duplicate state in Redis is kept per group, so a new group reprocesses the hits afresh")
	fs.IntVar(&cfg.MaxBatch, "processor.maxBatch", cfg.MaxBatch, "most hits per write and commit")
	fs.DurationVar(&cfg.MaxWait, "processor.maxWait", cfg.MaxWait, "how long a batch waits to fill")
	fs.DurationVar(&cfg.Session.Timeout, "processor.sessionTimeout", cfg.Session.Timeout, "inactivity (event time) that ends a session; closed sessions go to pixel.sessions.v1 (pixel_processor_sessions_closed_total)")
	fs.DurationVar(&cfg.Session.MaxDuration, "processor.sessionMax", cfg.Session.MaxDuration, "longest session; the first hit past it starts a new one")
	fs.DurationVar(&cfg.Session.DedupeWindow, "processor.dedupeWindow", cfg.Session.DedupeWindow, "event-time window, back from a visitor's newest hit, in which a repeated event id is dropped as a duplicate (pixel_processor_hits_total{result=\"duplicate\"}); see also -processor.dedupeMaxIDs")
	fs.IntVar(&cfg.Session.MaxIDs, "processor.dedupeMaxIDs", cfg.Session.MaxIDs, "most event ids remembered per visitor for duplicate detection; bounds memory against a visitor flooding hits")
	fs.DurationVar(&cfg.ClockTick, "processor.clockTick", cfg.ClockTick, "how often each processor writes a clock tick to every partition of pixel.hits.v1, so sessions end after -processor.sessionTimeout even where no newer hit comes (a tick moves event time to its time less this interval); 0 = none")
	fs.DurationVar(&cfg.StateTTL, "processor.stateTTL", cfg.StateTTL, "event time a visitor's session and duplicate state is kept in memory after its newest hit once its session is closed; at least -processor.sessionTimeout and -processor.dedupeWindow (pixel_processor_state_visitors)")
	fs.IntVar(&cfg.MaxVisitors, "processor.maxVisitors", cfg.MaxVisitors, "most visitor states held per hits partition; past it the least recently seen are forgotten at the next sweep, open sessions closed early (pixel_processor_state_evicted_total); about 350 bytes each")
	fs.DurationVar(&cfg.SnapshotInterval, "processor.snapshotInterval", cfg.SnapshotInterval, "how often each changed partition's state is snapshotted to Redis; a processor taking a partition over replays the hits since its snapshot from Kafka (pixel_processor_state_restored_hits_total)")
	fs.DurationVar(&cfg.SnapshotTTL, "processor.snapshotTTL", cfg.SnapshotTTL, "how long a partition's snapshot not written again stays in Redis; a group stopped for longer rebuilds its state from the hits of the last -processor.stateTTL")
	fs.IntVar(&cfg.IPv4Bits, "processor.ipv4Bits", cfg.IPv4Bits, "leading bits kept of client IPv4 addresses in events; the raw IP never leaves the processor")
	fs.IntVar(&cfg.IPv6Bits, "processor.ipv6Bits", cfg.IPv6Bits, "leading bits kept of client IPv6 addresses in events")
	fs.StringVar(&cfg.Geo.CityDB, "processor.geoCityDB", cfg.Geo.CityDB, "MaxMind-format City or Country database (GeoLite2, GeoIP2, DB-IP lite); reloaded when the file changes; empty = the built-in country table (IP2Location LITE)")
	fs.StringVar(&cfg.Geo.ASNDB, "processor.geoASNDB", cfg.Geo.ASNDB, "MaxMind-format ASN database; empty = no asn")
	fs.DurationVar(&cfg.Geo.ReloadInterval, "processor.geoReload", cfg.Geo.ReloadInterval, "how often the geo database files are checked for changes (pixel_processor_geo_reloads_total)")
	fs.BoolVar(&cfg.Geo.NoDefault, "processor.geoNoDefault", cfg.Geo.NoDefault, "leave country empty when no -processor.geoCityDB is given, instead of using the built-in table")
	fs.IntVar(&cfg.UACache, "processor.uaCache", cfg.UACache, "parsed user agents cached (pixel_processor_ua_cache_total shows hits and misses)")
	fs.StringVar(&cfg.ReferrerList, "processor.referrerList", cfg.ReferrerList, "file of \"domain medium\" lines (medium: search, social, email, paid, internal, direct, other) extending the built-in referrer list")
	fs.StringVar(&cfg.DatacenterList, "processor.datacenterList", cfg.DatacenterList, "file of datacenter/cloud CIDRs, one per line; hits from them are labelled bot with reason \"datacenter\"")
	fs.IntVar(&cfg.MaxPerMinute, "processor.maxPerMinute", cfg.MaxPerMinute, "most hits per visitor per minute of event time before hits are labelled bot with reason \"rate\"")
	fs.BoolVar(&cfg.UTMCampaigns, "processor.utmCampaigns", cfg.UTMCampaigns, "count a hit without a campaign (camp parameter) under its page's utm_campaign, when that is an id of A-Z a-z 0-9 . _ : - (at most 128 bytes); each campaign adds records per content id and day, at most -aggregator.maxCampaigns")
	fs.DurationVar(&cfg.AuditRetention, "processor.auditRetention", cfg.AuditRetention, "how long the completeness audit's figures per edge node and minute are kept in Redis (GET /v1/audit, pixelpipe audit)")
	fs.StringVar(&cfg.RecipientIDs, "processor.recipientIDs", cfg.RecipientIDs, "tenants and campaigns whose events carry a hit's uid as sent (recipient_id), besides its keyed hash (recipient_key, always): TENANT, TENANT/CAMPAIGN or *, comma-separated (a tenant is the part of content ids before ':'); empty = none")
	fs.StringVar(&cfg.SignedPixels, "processor.signedPixels", cfg.SignedPixels, "signed-pixel policy per tenant or content id, KEY=POLICY,... (KEY: a content id, a tenant, or * for the rest; POLICY: require = hits that are not verified signed pixels count in the unverified class, never as human; prefer = they count as human, their reasons tallied apart; off); e.g. acme=require,*=prefer")
}

// newProcessor wires a processor to Kafka and to the snapshots of its
// session state in Redis under PREFIX:proc.
func newProcessor(kc kafkaconn.Config, cfg processor.Config, rdb redis.UniversalClient, redisPrefix string, logger *slog.Logger, reg prometheus.Registerer) (*processor.Processor, error) {
	l := logger.With("component", "processor")
	reader := kafkaconn.NewGroupReader(kc, cfg.HitsTopic, cfg.Group, l)
	kafkaconn.NewReaderMetrics(reg, "processor").Watch(reader)
	writers := kafkaconn.NewWriterMetrics(reg, "processor")
	d := processor.Deps{
		Reader:   reader,
		Events:   kafkaconn.NewProducer(kc, cfg.EventsTopic).WithMetrics(writers),
		Sessions: kafkaconn.NewProducer(kc, cfg.SessionsTopic).WithMetrics(writers),
		DLQ:      kafkaconn.NewProducer(kc, cfg.DLQTopic).WithMetrics(writers),
		Clock:    kafkaconn.NewProducer(kc, cfg.HitsTopic),
		State:    state.New(rdb, redisPrefix+":proc", cfg.SnapshotTTL),
		Hits:     kafkaconn.NewRanges(kc, cfg.HitsTopic, l),
		Audit:    audit.NewWriter(rdb, redisPrefix, cfg.AuditRetention),
	}
	return processor.New(cfg, l, reg, d)
}

func cmdAggregator(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	cfg := aggregator.DefaultConfig()
	fs := newFlagSet("aggregator", "", "pixelpipe aggregator -kafka.brokers=kafka-1:9092 -redis.addr=redis:6379")
	c.bindLog(fs)
	c.bindAdmin(fs, ":9103")
	c.bindKafka(fs)
	c.bindRedis(fs)
	bindAggregator(fs, &cfg)
	if err := parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	cfg.EventsTopic, cfg.DLQTopic, cfg.CountsTopic = c.topic(schemas.TopicEvents), c.topic(schemas.TopicDLQ), c.topic(schemas.TopicCounts)
	logger, err := newLogger(stdout, c.logLevel)
	if err != nil {
		return err
	}
	if err := c.kafka().Validate(); err != nil {
		return err
	}
	addr, err := c.redis()
	if err != nil {
		return err
	}
	rdb := newRedis(addr)
	defer rdb.Close()
	reg := newRegistry()
	store := hllstore.New(rdb, hllstore.Config{Prefix: c.redisPrefix, HourRetention: cfg.HourRetention, DayRetention: cfg.DayRetention,
		RecipientRetention: cfg.RecipientRetention, RecipientRetentionFor: cfg.RecipientRetentionFor})
	a, err := newAggregator(c.kafka(), cfg, store, logger, reg)
	if err != nil {
		return err
	}
	rollups, err := aggregator.NewRollups(cfg, logger.With("component", "rollup"), reg, store, lease.New(rdb, c.redisPrefix))
	if err != nil {
		return err
	}
	adm, err := admin.Listen(c.adminAddr, reg, logger)
	if err != nil {
		return err
	}
	return serve(ctx, logger, adm, a, rollups)
}

func bindAggregator(fs *flag.FlagSet, cfg *aggregator.Config) {
	fs.StringVar(&cfg.Group, "aggregator.group", cfg.Group, "Kafka consumer group of the aggregators")
	fs.DurationVar(&cfg.FlushInterval, "aggregator.flushInterval", cfg.FlushInterval, "how often counts are written to Redis and offsets committed; bounds how stale queries are")
	fs.DurationVar(&cfg.IdleCheck, "aggregator.idleCheck", cfg.IdleCheck, "how often the freshness watermarks of events partitions no aggregator wrote for 3 times as long are moved to now when the group has committed them to the end (partitions without new events since a rebalance)")
	fs.IntVar(&cfg.MaxBatch, "aggregator.maxBatch", cfg.MaxBatch, "most events applied between two flushes: below this many events per -aggregator.flushInterval the aggregator flushes once per interval (one Redis write per changed content id and day), above it more often")
	fs.DurationVar(&cfg.IdleEvict, "aggregator.idleEvict", cfg.IdleEvict, "drop clean in-memory counts not touched for this long (reloaded from Redis when needed)")
	fs.DurationVar(&cfg.CommitDelay, "aggregator.commitDelay", cfg.CommitDelay, "how long offsets wait after their flush before they are committed; keep it above the window in which Redis can lose acknowledged writes (appendfsync everysec: ~2s; on a Redis Cluster, how far behind its master a promoted replica may be)")
	fs.DurationVar(&cfg.LateHorizon, "aggregator.lateHorizon", cfg.LateHorizon, "events older than this (by event time) are not counted: they go to the dead-letter topic and pixel_aggregator_events_total{result=\"late\"}")
	fs.DurationVar(&cfg.DetailInterval, "aggregator.detailInterval", cfg.DetailInterval, "how often breakdowns, the top-N index and count snapshots are written (totals and uniques every aggregator.flushInterval); offsets wait for it before they are committed")
	fs.BoolVar(&cfg.Snapshots, "aggregator.snapshots", cfg.Snapshots, "publish count snapshots to the compacted counts topic")
	fs.DurationVar(&cfg.RollupInterval, "aggregator.rollup.interval", cfg.RollupInterval, "how often the rollup job wakes to build the week rollups of weeks that became final (past -aggregator.lateHorizon plus -aggregator.rollup.margin and every partition's freshness watermark), so no query builds them; one aggregator process at a time runs it (a Redis lease); 0 = off (queries then build rollups on first read); metrics pixel_aggregator_rollup_*")
	fs.IntVar(&cfg.RollupRate, "aggregator.rollup.rate", cfg.RollupRate, "most week rollups per second the rollup job builds (each reads a content id's 7 day hashes; checking one already valid counts as an eighth); bounds its load on Redis next to the flushes")
	fs.DurationVar(&cfg.RollupMargin, "aggregator.rollup.margin", cfg.RollupMargin, "a week is rolled up no earlier than its end plus -aggregator.lateHorizon plus this, by this process's clock")
	fs.DurationVar(&cfg.RollupMaxWait, "aggregator.rollup.maxWait", cfg.RollupMaxWait, "how long past its end plus -aggregator.lateHorizon a week waits for every partition's freshness watermark before it is rolled up anyway (pixel_aggregator_rollup_weeks_total{result=\"forced\"}; a rollup whose days change later is rebuilt by readers)")
	fs.DurationVar(&cfg.HourRetention, "aggregator.hourRetention", cfg.HourRetention, "how long hour counts (hour series) stay in Redis after their day's first write, e.g. 840h = 35 days; must exceed 24h plus -aggregator.lateHorizon")
	fs.DurationVar(&cfg.DayRetention, "aggregator.dayRetention", cfg.DayRetention, "how long day counts, breakdowns, order ids and the campaign index stay in Redis after their day's first write (week rollups: as long as their last day), e.g. 9600h = 400 days; at least -aggregator.hourRetention and above a week plus -aggregator.lateHorizon plus -aggregator.rollup.maxWait")
	fs.DurationVar(&cfg.RecipientRetention, "aggregator.recipientRetention", cfg.RecipientRetention, "how long a day's per-recipient activity of a campaign (who opened, clicked, converted; the recipients and links routes) stays in Redis after its first write, e.g. 2160h = 90 days; must exceed 24h plus -aggregator.lateHorizon")
	fs.Func("aggregator.recipientRetentionFor", "per tenant or campaign, how long a day's per-recipient activity stays instead of -aggregator.recipientRetention: TENANT=DURATION or TENANT/CAMPAIGN=DURATION, comma-separated, e.g. acme=720h,acme/black-friday=4320h (a campaign's entry wins over its tenant's); each must exceed 24h plus -aggregator.lateHorizon", func(v string) error {
		m, err := aggregator.ParseRetentions(v)
		cfg.RecipientRetentionFor = m
		return err
	})
	fs.IntVar(&cfg.MaxCampaigns, "aggregator.maxCampaigns", cfg.MaxCampaigns, "campaigns counted per content id and day; events of further campaigns count for their content id only (pixel_aggregator_campaigns_over_limit_total), so made-up campaign names cannot grow Redis without bound")
	fs.IntVar(&cfg.MaxBreakdownValues, "aggregator.maxBreakdownValues", cfg.MaxBreakdownValues, "distinct values kept per content id, kind, day and breakdown dimension; later ones count under \"other\"")
}

func newAggregator(kc kafkaconn.Config, cfg aggregator.Config, store *hllstore.Store, logger *slog.Logger, reg prometheus.Registerer) (*aggregator.Aggregator, error) {
	l := logger.With("component", "aggregator")
	stats := kafkaconn.NewReaderMetrics(reg, "aggregator")
	open := func() *kafka.Reader {
		r := kafkaconn.NewGroupReader(kc, cfg.EventsTopic, cfg.Group, l)
		stats.Watch(r)
		return r
	}
	writers := kafkaconn.NewWriterMetrics(reg, "aggregator")
	return aggregator.New(cfg, l, reg, open, store, aggregator.Outputs{
		DLQ:    writers.Watch(kafkaconn.NewWriter(kc, cfg.DLQTopic, l)),
		Counts: writers.Watch(kafkaconn.NewWriter(kc, cfg.CountsTopic, l)),
		Idle:   kafkaconn.NewGroupIdle(kc, cfg.EventsTopic, cfg.Group),
	})
}

// newRedis returns a client of the server or Redis Cluster addr names
// (redisconn.Parse), whose context deadlines apply to socket I/O, so
// shutdown deadlines hold. Its retries are harmless: every count write is
// absolute and guarded by a token each write replaces (hllstore), and a
// state snapshot is written only over the position its writer last wrote
// (processor/state).
func newRedis(addr redisconn.Addr) redis.UniversalClient {
	return redisconn.New(addr, redis.UniversalOptions{
		ContextTimeoutEnabled: true,
		DialTimeout:           5 * time.Second,
		ReadTimeout:           5 * time.Second,
		WriteTimeout:          5 * time.Second,
	})
}

func cmdQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	cfg := query.DefaultConfig()
	token := flagenv.NewSecret("")
	tokens := flagenv.NewSecret("")
	fs := newFlagSet("query", "", "pixelpipe query -redis.addr=redis:6379 -query.tokens=$ACME_TOKEN=acme,$OPS_TOKEN=*; curl -H \"Authorization: Bearer $ACME_TOKEN\" 'localhost:8081/v1/stats/acme:article-7?from=2026-11-01&to=2026-12-01'; dashboard at http://localhost:8081/")
	c.bindLog(fs)
	c.bindAdmin(fs, ":9104")
	c.bindRedis(fs)
	fs.StringVar(&cfg.ListenAddr, "query.listenAddr", cfg.ListenAddr, "API address, host:port")
	fs.Var(token, "query.token", "a bearer token that reads every tenant (same as -query.tokens=TOKEN=*); with neither flag the API is open (only for private networks)")
	fs.Var(tokens, "query.tokens", "bearer tokens and the tenant each may read: TOKEN=TENANT[,TOKEN=TENANT...]; tenant * reads all; a tenant reads the content ids \"<tenant><separator><name>\" (see -query.tenantSeparator); 401 without a known token, 403 outside its tenant")
	fs.StringVar(&cfg.TenantSeparator, "query.tenantSeparator", cfg.TenantSeparator, "separator after the tenant in content ids: with \":\", content id acme:article-7 belongs to tenant acme")
	fs.DurationVar(&cfg.LiveInterval, "query.liveInterval", cfg.LiveInterval, "how often /v1/live and the dashboard's counters update; at most 1s")
	fs.IntVar(&cfg.MaxLiveStreams, "query.maxLiveStreams", cfg.MaxLiveStreams, "concurrent /v1/live streams (each reads Redis every -query.liveInterval); more get 503")
	fs.IntVar(&cfg.EventsPartitions, "query.eventsPartitions", cfg.EventsPartitions, "partitions of pixel.events.v1: the freshness watermark is complete only when each reported; 0 = do not check")
	fs.IntVar(&cfg.MaxRangeDays, "query.maxRangeDays", cfg.MaxRangeDays, "longest range a query may ask for, in days")
	fs.StringVar(&cfg.AuditGroup, "query.auditGroup", cfg.AuditGroup, "consumer group of the processors whose completeness audit GET /v1/audit reads (their -processor.group)")
	secret := flagenv.NewSecret("")
	fs.Var(secret, "visitor.secret", "the processors' visitor secret: lets the recipient routes find and erase a recipient by uid (they key it as the processors do); without it they take recipient keys only (by=key)")
	fs.BoolVar(&cfg.UIDsPseudonymised, "query.uidsPseudonymised", cfg.UIDsPseudonymised, "the edges run with -edge.pseudonymise: the recipient routes key a uid as its pseudonym, as the processors saw it")
	fs.DurationVar(&cfg.ErasureGrace, "query.erasureGrace", cfg.ErasureGrace, "how long DELETE /v1/recipients/{uid} waits before its second pass, which removes what an aggregator wrote while the erasure was being recorded; longer than an aggregator's Redis write")
	if err := parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	cfg.Token, cfg.VisitorSecret = token.Value(), secret.Value()
	var err error
	if cfg.Tokens, err = parseTokens(tokens.Value()); err != nil {
		return err
	}
	logger, err := newLogger(stdout, c.logLevel)
	if err != nil {
		return err
	}
	addr, err := c.redis()
	if err != nil {
		return err
	}
	rdb := newRedis(addr)
	defer rdb.Close()
	reg := newRegistry()
	store := hllstore.New(rdb, hllstore.Config{Prefix: c.redisPrefix})
	srv, err := query.New(cfg, logger.With("component", "query"), reg, counts.NewReader(store), audit.NewReader(rdb, c.redisPrefix))
	if err != nil {
		return err
	}
	srv.SetEraser(store)
	adm, err := admin.Listen(c.adminAddr, reg, logger)
	if err != nil {
		return err
	}
	return serve(ctx, logger, adm, srv)
}

func cmdTopics(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlagSet("topics", "", "pixelpipe topics -kafka.brokers=127.0.0.1:19092")
	c.bindKafka(fs)
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	if err := parse(fs, args, stdout, stderr); err != nil {
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

// parseTokens reads -query.tokens: TOKEN=TENANT[,TOKEN=TENANT...].
func parseTokens(v string) (map[string]string, error) {
	if v == "" {
		return nil, nil
	}
	out := map[string]string{}
	for i, part := range strings.Split(v, ",") {
		tok, tenant, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || tok == "" || tenant == "" {
			return nil, fmt.Errorf("query.tokens entry %d: use TOKEN=TENANT (tenant * reads all)", i+1)
		}
		out[tok] = tenant
	}
	return out, nil
}
