// Package hllstore is the only package that knows how counts are laid out in
// Redis. A record (content id, optional campaign, event kind, traffic class,
// hour or day) holds the exact total, the serialized HyperLogLog sketch of
// visitor keys, per-reason totals of bot traffic, and the distinct orders and
// summed value per currency of conversions.
//
// All records of one content id on one UTC day form a Day, stored in three
// hashes that share a Redis Cluster hash tag:
//
//	<prefix>:c:{<content>:<yyyymmdd>}:d  day records, and the guard: version and positions
//	<prefix>:c:{<content>:<yyyymmdd>}:h  hour records (HourRetention, 35 days)
//	<prefix>:c:{<content>:<yyyymmdd>}:b  breakdowns (DayRetention, like :d, 400 days)
//
// Campaign records are fields of the content id's day; a per-day set lists a
// campaign's content ids, and "<prefix>:ci:<yyyymmdd>" every content id with
// a day hash that day (the day index, written before a day's first write:
// index.go). Week rollups (week.go) serve long ranges; each names the
// versions of the days it was built from, so readers rebuild one whose days
// were written since. A sorted set per kind and day holds the top-N;
// "<prefix>:wm" the watermarks; "<prefix>:lease:<name>" a job's lease.
//
// Writes are absolute (the new totals and sketches, not increments) and go
// through one Lua script call per Day (SaveDays), carrying only the records
// that changed since the last write. The call writes only over the version
// the writer loaded and never moves a position backwards (every stored
// source partition must be among the new positions, none smaller). So a
// replay (skipped by position), a go-redis retry of a write that already
// happened, a stale owner after a consumer-group rebalance, or a writer that
// outlived a Redis crash (all refused by version) can never count an event
// twice or overwrite newer counts. The call touches the three hashes of one
// hash tag, so one cluster slot, and is atomic.
//
// Readers (Load) ask only for the fields they need with one HMGET per hash.
//
// Store is safe for concurrent use.
package hllstore
