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
//	  audit   the partition's completeness audit lanes at pos (package audit)
//
// The state at pos is base with the deltas d:1, d:2, ... applied in order. A
// base replaces the whole hash, a delta adds a field; either is written only
// on top of the exact position its writer last wrote or loaded (compare and
// set), so a stale owner after a rebalance can neither overwrite newer
// state nor land on someone else's lineage, and the audit figures written
// in the same script count each hit once. Writers
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

	"github.com/pixelpipe/pixelpipe/audit"
	"github.com/pixelpipe/pixelpipe/processor/session"
)

// Store reads and writes snapshots. It is safe for concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// New returns a store writing keys under prefix; a snapshot not written for
// ttl (wall time) expires. prefix must hold no { or }: the snapshot and the
// audit hashes its script writes share a slot by the hash tag after it.
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
	// Audit is the partition's audit lanes (package audit), nil when the
	// snapshot has none.
	Audit []byte
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
	if a, ok := fields["audit"]; ok && a != "" {
		snap.Audit = []byte(a)
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

// Position returns the position (Clock.Next) of a partition's stored
// snapshot, -1 when there is none.
func (s *Store) Position(ctx context.Context, p Partition) (int64, error) {
	k := s.key(p)
	v, err := s.rdb.HGet(ctx, k, "pos").Result()
	if errors.Is(err, redis.Nil) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read processor state position %s: %w", k, err)
	}
	c, err := parseClock(v)
	if err != nil {
		return 0, fmt.Errorf("read processor state position %s: %w: %w", k, ErrCorrupt, err)
	}
	return c.Next, nil
}

// Drop deletes a partition's snapshot: the caller found it unreadable and
// rebuilds the state from the hits, then writes a base on no position.
func (s *Store) Drop(ctx context.Context, p Partition) error {
	if err := s.rdb.Del(ctx, s.key(p)).Err(); err != nil {
		return fmt.Errorf("drop processor state %s: %w", s.key(p), err)
	}
	return nil
}

// saveScript: KEYS[1] the snapshot hash, KEYS[2..] audit hashes of the
// same slot; ARGV[1] pos, ARGV[2] field ("base" or "d:N"), ARGV[3] blob,
// ARGV[4] ttl ms, ARGV[5] the next offset of the position the snapshot
// continues (-1: none), ARGV[6] the audit lanes, ARGV[7] the audit hashes'
// ttl ms, then per audit hash: the number of changes and each change as
// field, kind ('i' add numbers, the fifth taken as a maximum; 's' set;
// 'd' delete), value.
var saveScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'pos')
local curNext = -1
if cur then curNext = tonumber(string.match(cur, '^(%-?%d+)')) end
if curNext ~= tonumber(ARGV[5]) then return 0 end
if ARGV[2] == 'base' then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'pos', ARGV[1], ARGV[2], ARGV[3], 'audit', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local a = 8
for k = 2, #KEYS do
  local n = tonumber(ARGV[a])
  a = a + 1
  for i = 1, n do
    local f, op, v = ARGV[a], ARGV[a+1], ARGV[a+2]
    a = a + 3
    if op == 'i' then
      local old = redis.call('HGET', KEYS[k], f)
      if old then
        local o = {}
        for x in string.gmatch(old, '%d+') do o[#o+1] = tonumber(x) end
        local out, j = {}, 0
        for x in string.gmatch(v, '%d+') do
          j = j + 1
          if j == 5 then
            out[j] = string.format('%d', math.max(o[j] or 0, tonumber(x)))
          else
            out[j] = string.format('%d', (o[j] or 0) + tonumber(x))
          end
        end
        v = table.concat(out, ' ')
      end
      redis.call('HSET', KEYS[k], f, v)
    elseif op == 's' then
      redis.call('HSET', KEYS[k], f, v)
    else
      redis.call('HDEL', KEYS[k], f)
    end
  end
  redis.call('PEXPIRE', KEYS[k], ARGV[7])
end
return 1
`)

// Audit is what a snapshot carries of the completeness audit (package
// audit): the partition's lanes, stored in the snapshot hash, and the
// changes to its audit hashes (in the partition's slot), written in the
// same script so they land exactly when the snapshot does.
type Audit struct {
	Lanes  []byte
	Writes []audit.Write
	TTL    time.Duration
}

// SaveBase replaces the stored snapshot with every visitor's state at c.
// prev is the position of the stored snapshot the caller continues (-1
// when it loaded none); when the stored one is elsewhere (another owner
// wrote since), it returns false, writing nothing, and the caller must
// reload. It also returns the blob's size.
func (s *Store) SaveBase(ctx context.Context, p Partition, prev int64, c Clock, visitors []*session.State, a *Audit) (bool, int, error) {
	blob := appendBlob(nil, visitors, nil)
	ok, err := s.save(ctx, p, c, "base", blob, prev, a)
	return ok, len(blob), err
}

// SaveDelta adds the n-th delta (n counts from 1 after a base): the states
// of the visitors changed and the visitors evicted since the position prev,
// which must be the stored one. It returns false, writing nothing,
// otherwise.
func (s *Store) SaveDelta(ctx context.Context, p Partition, prev int64, c Clock, n int, changed []*session.State, gone []uint64, a *Audit) (bool, int, error) {
	blob := appendBlob(nil, changed, gone)
	ok, err := s.save(ctx, p, c, "d:"+strconv.Itoa(n), blob, prev, a)
	return ok, len(blob), err
}

func (s *Store) save(ctx context.Context, p Partition, c Clock, field string, blob []byte, prev int64, a *Audit) (bool, error) {
	k := s.key(p)
	if a == nil {
		a = &Audit{}
	}
	keys := []string{k}
	args := []any{c.String(), field, blob, s.ttl.Milliseconds(), prev, a.Lanes, max(a.TTL.Milliseconds(), 1)}
	for _, w := range a.Writes {
		keys = append(keys, w.Key)
		args = append(args, len(w.Ops))
		for _, op := range w.Ops {
			args = append(args, op.Field, string(op.Kind), op.Value)
		}
	}
	ok, err := saveScript.Run(ctx, s.rdb, keys, args...).Int()
	if err != nil {
		return false, fmt.Errorf("save processor state %s %s (%d bytes) at offset %d: %w", k, field, len(blob), c.Next, err)
	}
	return ok == 1, nil
}
