// Package state keeps snapshots of the processor's per-partition session and
// duplicate state in Redis. The processor holds the state of the partitions
// it owns in memory and writes a snapshot of each changed partition once per
// interval, never per hit: a Redis write costs the same for one visitor or a
// thousand, so the cost grows with time and with bytes, not with hits. A
// processor that takes a partition over loads its snapshot and replays the
// hits between the snapshot's position and the committed offset from Kafka.
//
// Layout, for consumer group G, topic T and partition P (one Redis hash, so
// one Redis Cluster slot, per partition through the {hash tag}):
//
//	PREFIX:{G|T|P}:snap   hash
//	  pos     "next watermark nextSweep": the first offset not reflected, and the sweep clock
//	  base    every visitor's state at some earlier position (a blob, codec.go)
//	  d:N     the visitors changed or evicted since the previous blob, N = 1, 2, ...
//
// The state at pos is base with the deltas d:1, d:2, ... applied in order. A
// base replaces the whole hash and is written only when it moves pos forward
// (or keeps it), so a stale owner after a rebalance cannot overwrite newer
// state; a delta is written only on top of the exact position its writer
// last wrote or loaded, so it never lands on someone else's lineage. Writers
// compact: when the deltas would outgrow the base, they write a base. A
// different consumer group has its own state: replaying the hits through a
// new group processes them afresh.
package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pixelpipe/pixelpipe/processor/session"
)

// Store reads and writes snapshots. It is safe for concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// New returns a store writing keys under prefix; a snapshot not written for
// ttl (wall time) expires.
func New(rdb redis.UniversalClient, prefix string, ttl time.Duration) *Store {
	return &Store{rdb: rdb, prefix: prefix, ttl: ttl}
}

// Partition names one partition's state.
type Partition struct {
	Group, Topic string
	ID           int
}

func (s *Store) key(p Partition) string {
	return s.prefix + ":{" + p.Group + "|" + p.Topic + "|" + strconv.Itoa(p.ID) + "}:snap"
}

// Clock is the position and sweep clock of a partition.
type Clock struct {
	// Next is the first offset not reflected in the state; -1 when nothing
	// was stored.
	Next int64
	// WatermarkMs is the newest event time seen in the partition.
	WatermarkMs int64
	// NextSweepMs is the event time at which open sessions are next checked.
	NextSweepMs int64
}

func (c Clock) String() string {
	return strconv.FormatInt(c.Next, 10) + " " + strconv.FormatInt(c.WatermarkMs, 10) + " " + strconv.FormatInt(c.NextSweepMs, 10)
}

func parseClock(v string) (Clock, error) {
	f := strings.Fields(v)
	if len(f) != 3 {
		return Clock{}, fmt.Errorf("malformed pos %q", v)
	}
	var c Clock
	var err [3]error
	c.Next, err[0] = strconv.ParseInt(f[0], 10, 64)
	c.WatermarkMs, err[1] = strconv.ParseInt(f[1], 10, 64)
	c.NextSweepMs, err[2] = strconv.ParseInt(f[2], 10, 64)
	for _, e := range err {
		if e != nil {
			return Clock{}, fmt.Errorf("malformed pos %q: %w", v, e)
		}
	}
	return c, nil
}

// ErrCorrupt is wrapped by Load's error when the stored snapshot cannot be
// read (a damaged or hand-edited hash), as opposed to Redis being
// unreachable.
var ErrCorrupt = errors.New("snapshot corrupt")

// Snapshot is a partition's state as stored.
type Snapshot struct {
	Clock    Clock
	Visitors map[uint64]*session.State
	// BaseBytes and DeltaBytes are the sizes of the stored base and of all
	// its deltas; Deltas is how many deltas there are (the next is d:Deltas+1).
	BaseBytes, DeltaBytes, Deltas int
}

// Load returns a partition's snapshot; Clock.Next is -1 when there is none.
func (s *Store) Load(ctx context.Context, p Partition) (*Snapshot, error) {
	k := s.key(p)
	fields, err := s.rdb.HGetAll(ctx, k).Result()
	if err != nil {
		return nil, fmt.Errorf("load processor state %s: %w", k, err)
	}
	snap := &Snapshot{Clock: Clock{Next: -1}, Visitors: map[uint64]*session.State{}}
	pos, ok := fields["pos"]
	if !ok {
		return snap, nil
	}
	if snap.Clock, err = parseClock(pos); err != nil {
		return nil, fmt.Errorf("load processor state %s: %w: %w", k, ErrCorrupt, err)
	}
	base, ok := fields["base"]
	if !ok {
		return nil, fmt.Errorf("load processor state %s: %w: position without a base", k, ErrCorrupt)
	}
	type delta struct {
		n    int
		blob string
	}
	var deltas []delta
	for f, v := range fields {
		if n, ok := strings.CutPrefix(f, "d:"); ok {
			i, err := strconv.Atoi(n)
			if err != nil || i < 1 {
				return nil, fmt.Errorf("load processor state %s: %w: field %q", k, ErrCorrupt, f)
			}
			deltas = append(deltas, delta{i, v})
		}
	}
	slices.SortFunc(deltas, func(a, b delta) int { return a.n - b.n })
	for i, d := range deltas {
		if d.n != i+1 {
			return nil, fmt.Errorf("load processor state %s: %w: delta %d missing", k, ErrCorrupt, i+1)
		}
	}
	apply := func(blob string) error {
		states, gone, err := decodeBlob([]byte(blob))
		if err != nil {
			return err
		}
		for _, st := range states {
			snap.Visitors[st.Visitor] = st
		}
		for _, v := range gone {
			delete(snap.Visitors, v)
		}
		return nil
	}
	if err := apply(base); err != nil {
		return nil, fmt.Errorf("load processor state %s base: %w: %w", k, ErrCorrupt, err)
	}
	snap.BaseBytes = len(base)
	for _, d := range deltas {
		if err := apply(d.blob); err != nil {
			return nil, fmt.Errorf("load processor state %s delta %d: %w: %w", k, d.n, ErrCorrupt, err)
		}
		snap.DeltaBytes += len(d.blob)
	}
	snap.Deltas = len(deltas)
	return snap, nil
}

// saveScript: KEYS[1] the snapshot hash; ARGV[1] pos, ARGV[2] field ("base"
// or "d:N"), ARGV[3] blob, ARGV[4] ttl ms, ARGV[5] (deltas only) the next
// offset of the position the delta was made on.
var saveScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'pos')
local curNext = -1
if cur then curNext = tonumber(string.match(cur, '^(%-?%d+)')) end
if ARGV[2] == 'base' then
  if curNext > tonumber(string.match(ARGV[1], '^(%-?%d+)')) then return 0 end
  redis.call('DEL', KEYS[1])
elseif curNext ~= tonumber(ARGV[5]) then
  return 0
end
redis.call('HSET', KEYS[1], 'pos', ARGV[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`)

// SaveBase replaces the stored snapshot with every visitor's state at c. It
// returns false, writing nothing, when the stored position is already past
// c.Next: another owner got further, and the caller must reload. It also
// returns the blob's size.
func (s *Store) SaveBase(ctx context.Context, p Partition, c Clock, visitors []*session.State) (bool, int, error) {
	blob := appendBlob(nil, visitors, nil)
	ok, err := s.save(ctx, p, c, "base", blob, 0)
	return ok, len(blob), err
}

// SaveDelta adds the n-th delta (n counts from 1 after a base): the states
// of the visitors changed and the visitors evicted since the position prev,
// which must be the stored one. It returns false, writing nothing,
// otherwise; the caller then writes a base.
func (s *Store) SaveDelta(ctx context.Context, p Partition, prev int64, c Clock, n int, changed []*session.State, gone []uint64) (bool, int, error) {
	blob := appendBlob(nil, changed, gone)
	ok, err := s.save(ctx, p, c, "d:"+strconv.Itoa(n), blob, prev)
	return ok, len(blob), err
}

func (s *Store) save(ctx context.Context, p Partition, c Clock, field string, blob []byte, prev int64) (bool, error) {
	k := s.key(p)
	ok, err := saveScript.Run(ctx, s.rdb, []string{k}, c.String(), field, blob, s.ttl.Milliseconds(), prev).Int()
	if err != nil {
		return false, fmt.Errorf("save processor state %s %s (%d bytes) at offset %d: %w", k, field, len(blob), c.Next, err)
	}
	return ok == 1, nil
}
