// Package hllstore is the only package that knows how counts are laid out in
// Redis. A record (content id, optional campaign, event kind, traffic class,
// hour or day) holds the exact total, the serialized HyperLogLog sketch of
// visitor keys, per-reason totals of bot traffic, the distinct orders and
// summed value per currency of conversions, and named sums: a visit record
// (kind KIND_SESSION: the visits that landed on the content id, one session
// event each) counts visits and their visitors, and sums their bounces,
// durations and pages (Count.Sums).
//
// All records of one content id on one UTC day form a Day. Content ids fall
// into 256 groups (GroupOf: FNV-1a of the content id modulo 256, two hex
// digits), and the Days of a group share hashes, one Redis Cluster hash tag
// (so one slot) per group and day:
//
//	<prefix>:c:{<group>:<yyyymmdd>}:d            day records, and each day's guard and record list
//	<prefix>:c:{<group>:<yyyymmdd>}:h            hour records (HourRetention, 35 days)
//	<prefix>:c:{<group>:<yyyymmdd>}:b            breakdowns (DayRetention, like :d, 400 days)
//	<prefix>:c:{<group>:<yyyymmdd>}:<content>:o  a content id's conversion orders
//
// Every field of the group hashes starts with "<content>|" (layout.go has
// the field layout). A Day lists its records and breakdown values, so a loader
// reads exactly their fields, never a whole group hash.
//
// Campaign records are fields of the content id's day; a per-day set lists a
// campaign's content ids, and "<prefix>:ci:{<group>:<yyyymmdd>}" every
// content id of the group with data that day (the day index, in the slot of
// the group's hashes, written before a day's first write: index.go). Week
// rollups (week.go) serve long ranges; each names the versions of the days
// it was built from, so readers rebuild one whose days were written since.
// A sorted set per kind and day holds the top-N, bounded to TopDepth
// content ids (top.go); "<prefix>:wm" the watermarks.
//
// On a Redis Cluster every script and multi-key command stays in one slot
// (its keys share a hash tag); pipelines span slots, and nothing relies on
// the order of their commands to different slots. The keys shared by every
// content id of a day are spread (the day index, one set per group) or
// bounded (the top-N).
//
// Writes are absolute (the new totals and sketches, not increments) and go
// through one Lua script call per group and day (SaveDays): one HMGET of the
// guards of the call's days, one HSET per group hash with every changed
// field of the days whose guard still holds the write token their writer
// loaded or last wrote. Every write stores a token new to it (random per
// flush), so a go-redis retry of a write that already happened, a stale
// owner after a consumer-group rebalance, or a writer that outlived a Redis
// crash that lost its last writes is refused, Day by Day, and can never
// count an event twice or overwrite newer counts; a replay is skipped by the
// positions stored in the guard (the hits' positions, and apart from them
// the session events', SessionPositions). The call touches hashes of one hash tag,
// so one cluster slot, and is atomic. The calls of one save are
// independent: when some fail (a cluster node down), the others' days are
// written and reported (SaveError). Lost tells a writer whose last write of
// a day Redis no longer holds (a crash, a failover to a replica that had
// not received it) though it has nothing more to write there.
//
// Readers (Load) ask only for the fields they need with one HMGET per hash,
// and get a Count per Key. The writer holds whole Days (LoadDays), whose
// Records are Counts plus what the writer needs to write them back: their
// order ids and what changed since their last write.
//
// Store is safe for concurrent use.
package hllstore
