package processor

import (
	"errors"
	"fmt"
	"time"

	"github.com/pixelpipe/pixelpipe/processor/geo"
	"github.com/pixelpipe/pixelpipe/processor/recipient"
	"github.com/pixelpipe/pixelpipe/processor/session"
	"github.com/pixelpipe/pixelpipe/processor/signing"
	"github.com/pixelpipe/pixelpipe/schemas"
)

// Config configures the processor.
type Config struct {
	// Group is the Kafka consumer group. Default "pixelpipe-processor". The
	// session and duplicate state is kept per group: a new group processes
	// the hits afresh.
	Group string
	// HitsTopic, EventsTopic, SessionsTopic and DLQTopic name the topics.
	// Defaults are the schemas package's names.
	HitsTopic, EventsTopic, SessionsTopic, DLQTopic string
	// VisitorSecret keys the visitor hashes; the same secret as the edges'.
	// Required.
	VisitorSecret string
	// MaxBatch is the most hits handled per write and commit.
	// Default 1000.
	MaxBatch int
	// MaxWait is how long a batch waits to fill. Default 20 ms.
	MaxWait time.Duration

	// Session holds the session and duplicate rules (30 min inactivity,
	// 24 h cap, 1 h duplicate window by default).
	Session session.Config
	// StateTTL is how long, in event time (the partition's newest hit), a
	// visitor's state is kept after its newest hit once its session is
	// closed; at least Session.Timeout and Session.DedupeWindow. Memory and
	// snapshot size grow with the visitors seen within it. Default 2 h.
	StateTTL time.Duration
	// MaxVisitors bounds the visitor states held per partition, whatever
	// the traffic (a flood of made-up visitor ids included). Past it, at
	// the partition's next sweep (each minute of event time), the visitors
	// seen least recently are forgotten, their open sessions closed early,
	// down to nine tenths of it (pixel_processor_state_evicted_total).
	// Default 250000 (about 90 MB of heap at BenchmarkSessionMemory's 351
	// bytes per visitor, 70 MB of snapshot at BenchmarkRecovery's 272).
	MaxVisitors int
	// SnapshotInterval is how often each changed partition's state is
	// written to Redis (wall time). A processor taking a partition over
	// replays the hits since its snapshot, so this bounds that replay.
	// Default 10 s.
	SnapshotInterval time.Duration
	// ClockTick is how often (wall time) the processor writes a clock tick
	// (schemas.ClockHeader) to every partition of the hits topic. A tick
	// moves its partition's event time on to its time less ClockTick, so
	// sessions end after their timeout even on a partition no newer hit
	// reaches; being in the log, ticks close the same sessions on a replay.
	// 0 writes none: sessions then end only when newer hits of their
	// partition come. Default 1 min.
	ClockTick time.Duration
	// SnapshotTTL is how long a snapshot not written again is kept in
	// Redis (wall time): a group stopped for longer rebuilds its state from
	// the hits of the last StateTTL.
	// Default 7 days.
	SnapshotTTL time.Duration

	// IPv4Bits and IPv6Bits are the prefix lengths kept of client IPs.
	// Defaults 24 and 48.
	IPv4Bits, IPv6Bits int
	// Geo names the MaxMind-format databases; none uses the built-in
	// country table.
	Geo geo.Config
	// UACache bounds the parsed user agents cached. Default 10000.
	UACache int
	// ReferrerList is a file of "domain medium" lines extending the
	// built-in referrer list; empty = built-in only.
	ReferrerList string
	// DatacenterList is a file of CIDRs (one per line) of datacenter and
	// cloud networks; hits from them are labelled "datacenter". Empty = none.
	DatacenterList string
	// MaxPerMinute is the most hits a visitor plausibly sends in one minute
	// of event time; more are labelled "rate". Default 120.
	MaxPerMinute int
	// SignedPixels is the signed-pixel policy per tenant or content id,
	// "KEY=POLICY,..." with KEY a content id, a tenant (the part of content
	// ids before ':') or "*", and POLICY require, prefer or off (package
	// signing). E.g. "acme=require,*=prefer". Default empty: off for all.
	SignedPixels string
	// RecipientIDs names the tenants and campaigns whose events carry a
	// hit's explicit visitor id (uid) as sent, besides its keyed hash:
	// "ENTRY,..." with ENTRY a tenant (the part of content ids before ':'),
	// TENANT/CAMPAIGN, or "*" (package recipient). Default empty: none; every
	// event with a uid carries only the keyed hash.
	RecipientIDs string
	// AuditRetention is how long the completeness audit's hashes in Redis
	// outlive their last write (GET /v1/audit reads up to 8 days). Default
	// 8 days.
	AuditRetention time.Duration
	// UTMCampaigns makes the page URL's utm_campaign an event's campaign
	// when the hit names none (its camp parameter), so links tagged for
	// analytics count as campaigns without a second parameter. Values
	// outside the id byte class (schemas.ValidID) are left out. Default
	// true.
	UTMCampaigns bool
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Group:            "pixelpipe-processor",
		HitsTopic:        schemas.TopicHits,
		EventsTopic:      schemas.TopicEvents,
		SessionsTopic:    schemas.TopicSessions,
		DLQTopic:         schemas.TopicDLQ,
		MaxBatch:         1000,
		MaxWait:          20 * time.Millisecond,
		Session:          session.DefaultConfig(),
		StateTTL:         2 * time.Hour,
		MaxVisitors:      250_000,
		SnapshotInterval: 10 * time.Second,
		ClockTick:        time.Minute,
		SnapshotTTL:      7 * 24 * time.Hour,
		AuditRetention:   8 * 24 * time.Hour,
		UTMCampaigns:     true,
		IPv4Bits:         24,
		IPv6Bits:         48,
		Geo:              geo.Config{ReloadInterval: time.Minute},
		UACache:          10_000,
		MaxPerMinute:     120,
	}
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Group == "" || c.HitsTopic == "" || c.EventsTopic == "" || c.SessionsTopic == "" || c.DLQTopic == "" {
		errs = append(errs, errors.New("processor group and topics must be set"))
	}
	if c.VisitorSecret == "" {
		errs = append(errs, errors.New("visitor.secret is required (the same as the edges')"))
	}
	if c.MaxBatch < 1 {
		errs = append(errs, errors.New("processor.maxBatch must be at least 1"))
	}
	if c.MaxWait <= 0 {
		errs = append(errs, errors.New("processor.maxWait must be positive"))
	}
	if err := c.Session.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.AuditRetention < time.Hour {
		errs = append(errs, errors.New("processor.auditRetention must be at least 1h"))
	}
	if c.StateTTL < c.Session.Timeout || c.StateTTL < c.Session.DedupeWindow {
		errs = append(errs, errors.New("processor.stateTTL must be at least the session timeout and the dedupe window"))
	}
	if c.SnapshotInterval <= 0 || c.SnapshotTTL < c.SnapshotInterval {
		errs = append(errs, errors.New("processor.snapshotInterval must be positive and processor.snapshotTTL at least as long"))
	}
	if c.ClockTick < 0 {
		errs = append(errs, errors.New("processor.clockTick must not be negative"))
	}
	if c.MaxVisitors < 10 {
		errs = append(errs, errors.New("processor.maxVisitors must be at least 10"))
	}
	if c.UACache < 1 {
		errs = append(errs, errors.New("processor.uaCache must be at least 1"))
	}
	if c.IPv4Bits < 0 || c.IPv4Bits > 32 || c.IPv6Bits < 0 || c.IPv6Bits > 128 {
		errs = append(errs, errors.New("processor.ipv4Bits must be 0-32 and processor.ipv6Bits 0-128"))
	}
	if c.MaxPerMinute < 1 {
		errs = append(errs, errors.New("processor.maxPerMinute must be at least 1"))
	}
	if _, err := recipient.ParseRules(c.RecipientIDs); err != nil {
		errs = append(errs, fmt.Errorf("processor.recipientIDs: %w", err))
	}
	if _, err := signing.Parse(c.SignedPixels); err != nil {
		errs = append(errs, fmt.Errorf("processor.signedPixels: %w", err))
	}
	return errors.Join(errs...)
}
