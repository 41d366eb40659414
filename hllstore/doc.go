// Package hllstore is the only package that knows how counts are laid out in
// Redis. A record (content id, optional campaign, event kind, traffic class,
// hour or day) holds the exact total, the serialized HyperLogLog sketch of
// visitor keys, per-reason totals of bot traffic, and the distinct orders and
// summed value per currency of conversions.
//
// All records of one content id on one UTC day form a Day, stored in three
// hashes. Their Redis Cluster hash tag names the content id's group (FNV-1a
// of the content id modulo Groups, 256, in two hex digits: GroupOf) and the
// day, so the days of a group share a cluster slot and are written together:
//
//	<prefix>:c:{<group>:<yyyymmdd>}:<content>:d  day records, and the guard: version, write token, positions
//	<prefix>:c:{<group>:<yyyymmdd>}:<content>:h  hour records (HourRetention, 35 days)
//	<prefix>:c:{<group>:<yyyymmdd>}:<content>:b  breakdowns (DayRetention, like :d, 400 days)
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
// through one Lua script call per group and day (SaveDays), which writes,
// for each Day of the call, only the records that changed since the last
// write, and only if the Day's hash still holds the write token its writer
// loaded or last wrote. Every write stores a token new to it (random per
// flush), so a go-redis retry of a write that already happened, a stale
// owner after a consumer-group rebalance, or a writer that outlived a Redis
// crash that lost its last writes is refused, Day by Day, and can never
// count an event twice or overwrite newer counts; a replay is skipped by the
// positions stored with the records. The call touches hashes of one hash
// tag, so one cluster slot, and is atomic.
//
// Readers (Load) ask only for the fields they need with one HMGET per hash.
//
// Store is safe for concurrent use.
package hllstore
