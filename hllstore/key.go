package hllstore

import (
	"time"

	"github.com/axiomhq/hyperloglog"

	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Bucket lengths in milliseconds.
const (
	HourMs = int64(time.Hour / time.Millisecond)
	DayMs  = 24 * HourMs
)

// Precision of the sketches: 2^14 registers, a standard error of
// 1.04/sqrt(16384) ≈ 0.81% once dense, at most 16 KiB per sketch. Below a few
// thousand visitors a sketch stays sparse (precision 25) and is exact in
// practice. BENCHMARKS.md and the accuracy tests hold the measurements.
const Precision = 14

// NewSketch returns an empty sketch of the store's precision.
func NewSketch() *hyperloglog.Sketch { return hyperloglog.New14() }

// Class separates people from machines: bot, machine-open and unverified
// traffic is counted apart, never mixed into human counts.
type Class uint8

// Traffic classes.
const (
	Human      Class = iota
	Bot              // invalid traffic: crawlers, headless browsers, prefetch, ...
	Machine          // email opens by proxies and scanners, not by a person
	Unverified       // not a verified signed pixel of a content id whose policy requires one
)

// String returns the class name used in keys and APIs.
func (c Class) String() string {
	switch c {
	case Bot:
		return "bot"
	case Machine:
		return "machine"
	case Unverified:
		return "unverified"
	}
	return "human"
}

// ParseClass is the inverse of Class.String.
func ParseClass(s string) (Class, bool) {
	switch s {
	case "human":
		return Human, true
	case "bot":
		return Bot, true
	case "machine":
		return Machine, true
	case "unverified":
		return Unverified, true
	}
	return Human, false
}

// Key names one counted bucket. Keys are small and comparable, so they key
// in-memory maps directly.
type Key struct {
	ContentID string
	// Campaign, when set, scopes the record to the hits of this campaign on
	// ContentID. A campaign's count is the merge of its records over content
	// ids (see CampaignContents); each record keeps a single owner because
	// events are partitioned by content id.
	Campaign string
	Kind     pixelpb.Kind
	Class    Class
	Gran     Granularity
	// Start of the bucket, Unix milliseconds UTC.
	Start int64
}

// Granularity is the length of a counted bucket. It appears in no stored
// key or field: a bucket's hash and fields follow from its Key (layout.go,
// week.go).
type Granularity uint8

// Granularities. The zero Granularity counts as GranularityDay.
const (
	// GranularityHour is a UTC hour: an hour record of a Day.
	GranularityHour Granularity = iota + 1
	// GranularityDay is a UTC day: a day record of a Day.
	GranularityDay
	// GranularityWeek is a Monday-to-Sunday UTC week (Start: the Monday): a
	// week rollup, for Load only.
	GranularityWeek
)

// String returns "hour", "day" or "week".
func (g Granularity) String() string {
	switch g {
	case GranularityHour:
		return "hour"
	case GranularityWeek:
		return "week"
	}
	return "day"
}

// BucketStart returns the start of the bucket of granularity g holding unixMs.
func BucketStart(g Granularity, unixMs int64) int64 {
	size := DayMs
	switch g {
	case GranularityHour:
		size = HourMs
	case GranularityWeek:
		return WeekStart(unixMs)
	}
	b := unixMs / size
	if unixMs%size != 0 && unixMs < 0 {
		b--
	}
	return b * size
}

// DayStart returns the start of the UTC day that holds unixMs.
func DayStart(unixMs int64) int64 { return BucketStart(GranularityDay, unixMs) }

// campaignIndexKey lists the content ids a campaign had hits on in a day.
func (s *Store) campaignIndexKey(campaign string, dayStart int64) string {
	return s.prefix + ":gi:" + campaign + ":" + time.UnixMilli(dayStart).UTC().Format("20060102")
}
