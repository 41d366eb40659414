// Package processor consumes raw hits from pixel.hits.v1 in a consumer group
// and turns them into the enriched, sessionized events of pixel.events.v1
// (keyed by content id, each carrying the Kafka position of its source hit)
// and the closed sessions of pixel.sessions.v1. Per hit it validates, derives
// the visitor key (linking a cookieless visit open at midnight to the
// previous day's key), drops duplicates of an event id, assigns the session
// (processor/session), looks up geo (processor/geo) and device
// (processor/device), classifies the traffic source (processor/source),
// labels bots and machine opens (processor/bots, never dropping them),
// redacts e-mail addresses and phone numbers again (internal/pii; the edge
// already did for hits of current edges) and truncates the IP: the raw
// IP never leaves it. Records that cannot be decoded, and hits the edge marked
// invalid, go to pixel.dlq.v1 with the reason; they never stop the stream.
//
// Per batch: write every derived record and wait for Kafka's
// acknowledgement, then commit the offsets. The session and duplicate state
// of each partition is held in memory and snapshotted to Redis once per
// Config.SnapshotInterval (processor/state), never per hit; a processor
// taking a partition over loads the snapshot and replays the hits between it
// and the committed offset, state only (partition.go). Processing is
// deterministic given the hits, so the rebuilt state is the uninterrupted
// one, and a replay writes the same session ids and sequence numbers. Files:
// processor.go (the batch loop), partition.go (state per partition,
// snapshots, restore), transform.go (the per-hit work), validate.go.
//
// A Processor is used by one goroutine, Run's; Run owns the geo reloader
// goroutine and waits for it.
package processor
