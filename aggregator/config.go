package aggregator

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/pixelpipe/pixelpipe/schemas"
)

// Config configures the aggregator.
type Config struct {
	// Group is the Kafka consumer group. Default "pixelpipe-aggregator".
	Group string
	// EventsTopic is the topic consumed, DLQTopic where late events go and
	// CountsTopic where count snapshots go. Defaults are the schemas
	// package's names.
	EventsTopic, DLQTopic, CountsTopic string
	// FlushInterval is how often dirty counts are written to Redis and
	// offsets committed; it bounds how stale the query side is. Default 1 s.
	FlushInterval time.Duration
	// IdleCheck is how often the freshness watermarks of partitions no
	// aggregator wrote for 3 × IdleCheck are checked against the group's
	// committed offsets (Outputs.Idle). Default 5 s.
	IdleCheck time.Duration
	// MaxBatch is the most events applied between two flushes: below
	// MaxBatch events per FlushInterval an aggregator flushes once per
	// interval, above it more often. A flush costs Redis a guarded write of
	// every content id and day that changed (grouped into one script call per
	// group of content ids and day), so flushing more often than the interval
	// multiplies that cost. Default 50000.
	MaxBatch int
	// IdleEvict drops clean in-memory state not touched for this long; it is
	// loaded again from Redis when needed. Default 10 min.
	IdleEvict time.Duration
	// LateHorizon is how old (by event time) an event may be and still be
	// counted in its bucket. Older events are counted in
	// pixel_aggregator_events_total{result="late"} and sent to the
	// dead-letter topic. Default 7 days.
	LateHorizon time.Duration
	// CommitDelay is how long Kafka offsets wait after the flush that holds
	// their events before they are committed. It must exceed the window in
	// which Redis can lose acknowledged writes (appendfsync everysec: about
	// 2 s; on a Redis Cluster, how far a replica promoted after its master
	// failed may be behind it), so events Redis lost are still uncommitted
	// and get replayed: before committing, the aggregator checks that Redis
	// still holds the writes of the days it wrote. Default 5 s.
	CommitDelay time.Duration
	// MaxBreakdownValues bounds the distinct values kept per content id, kind,
	// day and breakdown dimension; further values count under "other".
	// Default 50.
	MaxBreakdownValues int
	// DetailInterval is how often the details are written: breakdowns, the
	// top-N index and count snapshots on the compacted counts topic (totals
	// and uniques are flushed every FlushInterval). Offsets are committed
	// only after the details of their events are written too. Default 10 s.
	DetailInterval time.Duration
	// Snapshots turns publishing count snapshots on. Default true.
	Snapshots bool

	// RollupInterval is how often the rollup job (Rollups) wakes to build
	// the week rollups of weeks that became final. 0 turns the job off
	// (readers then build rollups on first read). Default 10 min.
	RollupInterval time.Duration
	// RollupRate bounds the week rollups per second the job builds (each
	// reads a content id's seven day hashes; checking a content id whose
	// rollup is already valid counts as an eighth), so it never crowds out
	// flushes. Default 200.
	RollupRate int
	// RollupMargin is how long after the end of a week plus LateHorizon,
	// by this process's clock, a week may be final (see Rollups). Default
	// 1 h.
	RollupMargin time.Duration
	// RollupMaxWait is how long after the end of a week plus LateHorizon
	// the job waits for every partition's freshness watermark to pass it
	// before it builds the week anyway (a partition without traffic keeps
	// an old watermark; pixel_aggregator_rollup_weeks_total{result="forced"}).
	// Default 24 h.
	RollupMaxWait time.Duration

	// HourRetention and DayRetention are how long the counts of an hour
	// and of a day (day records, breakdowns, order ids, the campaign
	// index; week rollups live as long as their last day) stay in Redis
	// after the first event of their day was written. Hour records feed
	// hour series (at most 31 days a query), day records everything else.
	// A day is written up to LateHorizon after it ends, so each must be
	// longer than a day plus LateHorizon, or a late event would bring a
	// record back with part of its counts; days must outlive the week
	// rollups' wait. Defaults 35 days and 400 days.
	HourRetention, DayRetention time.Duration
	// RecipientRetention is how long a day's per-recipient activity of a
	// campaign (who opened, clicked, converted) stays in Redis after its
	// first write; like hours, longer than a day plus LateHorizon. Default
	// 90 days. RecipientRetentionFor overrides it per tenant ("acme") or
	// campaign of a tenant ("acme/spring"), each also longer than a day
	// plus LateHorizon (ParseRetentions reads them from a flag).
	RecipientRetention    time.Duration
	RecipientRetentionFor map[string]time.Duration
	// MaxCampaigns bounds the campaigns counted per content id and day:
	// events of further campaigns count for the content id only (and in
	// pixel_aggregator_campaigns_over_limit_total). Default 200.
	MaxCampaigns int
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Group:         "pixelpipe-aggregator",
		EventsTopic:   schemas.TopicEvents,
		DLQTopic:      schemas.TopicDLQ,
		CountsTopic:   schemas.TopicCounts,
		FlushInterval: time.Second,
		IdleCheck:     5 * time.Second,
		MaxBatch:      50_000,
		IdleEvict:     10 * time.Minute,

		CommitDelay:        5 * time.Second,
		MaxBreakdownValues: 50,
		LateHorizon:        7 * 24 * time.Hour,
		DetailInterval:     10 * time.Second,
		Snapshots:          true,
		RollupInterval:     10 * time.Minute,
		RollupRate:         200,
		RollupMargin:       time.Hour,
		RollupMaxWait:      24 * time.Hour,
		HourRetention:      35 * 24 * time.Hour,
		DayRetention:       400 * 24 * time.Hour,
		RecipientRetention: 90 * 24 * time.Hour,
		MaxCampaigns:       200,
	}
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Group == "" || c.EventsTopic == "" || c.DLQTopic == "" || c.CountsTopic == "" {
		errs = append(errs, errors.New("aggregator.group and the events, dead-letter and counts topics must be set"))
	}
	if c.FlushInterval <= 0 {
		errs = append(errs, errors.New("aggregator.flushInterval must be positive"))
	}
	if c.IdleCheck < c.FlushInterval {
		errs = append(errs, errors.New("aggregator.idleCheck must be at least aggregator.flushInterval"))
	}
	if c.MaxBatch < 1 {
		errs = append(errs, errors.New("aggregator.maxBatch must be at least 1"))
	}
	if c.MaxCampaigns < 1 {
		errs = append(errs, errors.New("aggregator.maxCampaigns must be at least 1"))
	}
	if c.MaxBreakdownValues < 1 {
		errs = append(errs, errors.New("aggregator.maxBreakdownValues must be at least 1"))
	}
	if c.CommitDelay < 0 {
		errs = append(errs, errors.New("aggregator.commitDelay must not be negative"))
	}
	if c.LateHorizon <= 0 {
		errs = append(errs, errors.New("aggregator.lateHorizon must be positive"))
	}
	if c.DetailInterval < c.FlushInterval {
		errs = append(errs, errors.New("aggregator.detailInterval must be at least aggregator.flushInterval"))
	}
	if c.IdleEvict <= 0 {
		errs = append(errs, errors.New("aggregator.idleEvict must be positive"))
	}
	if c.RollupInterval < 0 {
		errs = append(errs, errors.New("aggregator.rollup.interval must not be negative (0 turns the rollup job off)"))
	}
	if c.RollupInterval > 0 && c.RollupRate < 1 {
		errs = append(errs, errors.New("aggregator.rollup.rate must be at least 1"))
	}
	// Every write of a day ends LateHorizon after the day's end.
	if writes := 24*time.Hour + c.LateHorizon; c.HourRetention <= writes {
		errs = append(errs, fmt.Errorf("aggregator.hourRetention %s: must exceed a day plus aggregator.lateHorizon (%s), or late events would bring expired hours back with part of their counts", c.HourRetention, writes))
	}
	// The rollup job reads a week's days up to RollupMaxWait after the
	// week's end plus LateHorizon.
	if need := 7*24*time.Hour + c.LateHorizon + c.RollupMaxWait; c.DayRetention <= need {
		errs = append(errs, fmt.Errorf("aggregator.dayRetention %s: must exceed a week plus aggregator.lateHorizon plus aggregator.rollup.maxWait (%s), so a week's days are there to roll up", c.DayRetention, need))
	}
	if writes := 24*time.Hour + c.LateHorizon; c.RecipientRetention <= writes {
		errs = append(errs, fmt.Errorf("aggregator.recipientRetention %s: must exceed a day plus aggregator.lateHorizon (%s), or late events would bring expired recipient activity back in part", c.RecipientRetention, writes))
	}
	for _, k := range slices.Sorted(maps.Keys(c.RecipientRetentionFor)) {
		if d, writes := c.RecipientRetentionFor[k], 24*time.Hour+c.LateHorizon; d <= writes {
			errs = append(errs, fmt.Errorf("aggregator.recipientRetentionFor %s=%s: must exceed a day plus aggregator.lateHorizon (%s)", k, d, writes))
		}
	}
	if c.DayRetention < c.HourRetention {
		errs = append(errs, fmt.Errorf("aggregator.dayRetention %s must be at least aggregator.hourRetention %s", c.DayRetention, c.HourRetention))
	}
	if c.RollupMargin < 0 || c.RollupMaxWait < 0 {
		errs = append(errs, errors.New("aggregator.rollup.margin and aggregator.rollup.maxWait must not be negative"))
	}
	return errors.Join(errs...)
}

// ParseRetentions parses "acme=720h,globex/spring=4320h" (tenants, or
// campaigns of a tenant, each with a retention) into
// Config.RecipientRetentionFor.
func ParseRetentions(v string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for entry := range strings.SplitSeq(v, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		who, ds, ok := strings.Cut(entry, "=")
		tenant, campaign, hasCampaign := strings.Cut(who, "/")
		d, err := time.ParseDuration(ds)
		if !ok || err != nil || d <= 0 || !schemas.ValidID(tenant) || tenant == "" || strings.Contains(tenant, ":") || (hasCampaign && (campaign == "" || !schemas.ValidID(campaign))) {
			return nil, fmt.Errorf("bad entry %q: use TENANT=DURATION or TENANT/CAMPAIGN=DURATION, e.g. acme/spring=720h (a tenant of A-Z a-z 0-9 . _ -, a campaign also :)", entry)
		}
		out[who] = d
	}
	return out, nil
}
