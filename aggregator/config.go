package aggregator

import (
	"errors"
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
	// 2 s), so events Redis lost in a crash are still uncommitted and get
	// replayed. Default 5 s.
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
	if c.RollupMargin < 0 || c.RollupMaxWait < 0 {
		errs = append(errs, errors.New("aggregator.rollup.margin and aggregator.rollup.maxWait must not be negative"))
	}
	return errors.Join(errs...)
}
