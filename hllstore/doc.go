// Package hllstore is the only package that knows how counts are laid out in
// Redis. One Redis hash per bucket (content id, optional campaign, event kind,
// traffic class, hour or day) holds the exact total, the serialized
// HyperLogLog sketch of visitor keys, its estimate, per-reason totals of
// bot traffic, the distinct orders and summed value per currency of
// conversions, and the positions of the last source hits applied to it.
//
// Writes are absolute (the new total and sketch, not an increment) and go
// through a one-key Lua script that refuses to move any position backwards.
// So a replay, a go-redis retry of a write that already happened, or a stale
// owner after a consumer-group rebalance can never count an event twice, and
// every write touches one key, which keeps it valid on Redis Cluster.
//
// Store is safe for concurrent use.
package hllstore
