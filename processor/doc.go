// Package processor consumes raw hits from pixel.hits.v1 in a consumer group,
// validates them, derives the visitor key, drops the raw IP (only a truncated
// form leaves), and writes enriched events to pixel.events.v1 keyed by content
// id, each carrying the Kafka position of its source hit. Records that cannot
// be decoded, and hits the edge marked invalid, go to pixel.dlq.v1 with the
// reason; they never stop the stream.
//
// Offsets are committed only after Kafka acknowledged every record derived
// from them, so a crash replays hits and never skips one; the position each
// event carries lets the aggregator count a replayed hit once.
package processor
