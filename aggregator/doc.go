// Package aggregator consumes pixel.events.v1 in a consumer group and keeps,
// per content id, event kind and UTC day, the exact total of events and a
// HyperLogLog sketch of visitors, flushed to Redis through hllstore.
//
// Events are keyed by content id, so one aggregator owns a content id at a
// time. Its state is held per content id and UTC day (hllstore.Day: every
// kind, class, campaign and hour of that day, and its breakdowns), loaded
// from Redis on first touch, updated in memory, and written back at every
// flush (one script call per group of content ids and day, see hllstore)
// carrying only the records that changed. Each day remembers, per source
// partition of pixel.hits.v1, the offset of the last hit applied, so an
// event at or below it (a replay after a crash, a duplicate written by a
// restarted processor) is skipped: every hit counts once. Visits (events
// of kind KIND_SESSION, one per visit the processor closed) count the same
// way by positions of their own, the offset and index of the record that
// closed them (hllstore.SessionPositions), in visit records (visits,
// visitors, and summed bounces, durations and pages) that are neither
// broken down nor ranked. Kafka offsets are committed only after the flush that
// holds their events succeeded, CommitDelay later, and once Redis was found
// to still hold that flush's writes (a crash or a failover can lose the last
// ones; the aggregator then replays from the committed offsets).
//
// Rollups, the rollup job, runs in the aggregator process next to it: once
// a week is final (rollup.go: past the late horizon by the clock the
// aggregator judges lateness by, and past every partition's freshness
// watermark), it builds the week rollups of every content id in the week's
// day indexes, rate-limited, one process at a time (a Redis lease), so no
// query has to.
//
// The aggregator never reads pixel.hits.v1 and never serves queries.
package aggregator
