// Package hllstore is the only package that knows how counts are laid out in
// Redis. One Redis hash per bucket (content id, optional campaign, event kind,
// traffic class, hour or day) holds the exact total, the serialized
// HyperLogLog sketch of visitor keys, its estimate, per-reason totals of
// bot traffic, the distinct orders and summed value per currency of
// conversions, and the positions of the last source hits applied to it.
//
// Writes are absolute (the new total and sketch, not an increment) and go
// through a one-key Lua script that writes only over the version the writer
// loaded and never moves a position backwards. So a replay (skipped by
// position), a go-redis retry of a write that already happened, a stale owner
// after a consumer-group rebalance, or a writer that outlived a Redis crash
// (all refused by version) can never count an event twice or overwrite newer
// counts; and every write touches one key, which keeps it valid on Redis
// Cluster.
//
// Store is safe for concurrent use.
package hllstore
