// Package state keeps the processor's per-visitor session and duplicate
// state in Redis, checkpointed per partition of the hits topic together with
// the position it reflects.
//
// Layout, for consumer group G, topic T and partition P (one Redis Cluster
// slot per partition through the {hash tag}):
//
//	PREFIX:{G|T|P}:pos        "next watermark nextSweep": the first offset not yet reflected, and the sweep clock
//	PREFIX:{G|T|P}:open       sorted set of visitors with an open session, scored by its last event time
//	PREFIX:{G|T|P}:v:VISITOR  JSON of session.State, expiring Config.TTL after its last write
//
// Checkpoint writes all of a batch's changes in one Lua script that refuses
// to move pos backwards, so a stale owner after a rebalance cannot overwrite
// newer state. A different consumer group has its own state: replaying the
// hits through a new group processes them afresh.
package state

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pixelpipe/pixelpipe/processor/session"
)

// Store reads and checkpoints state. It is safe for concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// New returns a store writing keys under prefix; visitor states expire ttl
// after their last write.
func New(rdb redis.UniversalClient, prefix string, ttl time.Duration) *Store {
	return &Store{rdb: rdb, prefix: prefix, ttl: ttl}
}

// Partition names one partition's state.
type Partition struct {
	Group, Topic string
	ID           int
}

func (s *Store) base(p Partition) string {
	return s.prefix + ":{" + p.Group + "|" + p.Topic + "|" + strconv.Itoa(p.ID) + "}"
}

func (s *Store) visitorKey(p Partition, v uint64) string {
	return s.base(p) + ":v:" + strconv.FormatUint(v, 16)
}

// Clock is the position and sweep clock of a partition.
type Clock struct {
	// Next is the first offset not reflected in the state; -1 when nothing
	// was checkpointed.
	Next int64
	// WatermarkMs is the newest event time seen in the partition.
	WatermarkMs int64
	// NextSweepMs is the event time at which open sessions are next checked.
	NextSweepMs int64
}

// Load returns a partition's clock and its open sessions (visitor to last
// event time).
func (s *Store) Load(ctx context.Context, p Partition) (Clock, map[uint64]int64, error) {
	c := Clock{Next: -1}
	b := s.base(p)
	pipe := s.rdb.Pipeline()
	pos := pipe.Get(ctx, b+":pos")
	open := pipe.ZRangeWithScores(ctx, b+":open", 0, -1)
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return c, nil, fmt.Errorf("load processor state %s: %w", b, err)
	}
	if v, err := pos.Result(); err == nil {
		f := strings.Fields(v)
		if len(f) != 3 {
			return c, nil, fmt.Errorf("load processor state %s: malformed pos %q", b, v)
		}
		c.Next, _ = strconv.ParseInt(f[0], 10, 64)
		c.WatermarkMs, _ = strconv.ParseInt(f[1], 10, 64)
		c.NextSweepMs, _ = strconv.ParseInt(f[2], 10, 64)
	}
	m := make(map[uint64]int64, len(open.Val()))
	for _, z := range open.Val() {
		v, err := strconv.ParseUint(z.Member.(string), 16, 64)
		if err != nil {
			return c, nil, fmt.Errorf("load processor state %s: open member %q: %w", b, z.Member, err)
		}
		m[v] = int64(z.Score)
	}
	return c, m, nil
}

// Visitors returns the stored states of visitors, nil where none is stored.
func (s *Store) Visitors(ctx context.Context, p Partition, visitors []uint64) ([]*session.State, error) {
	out := make([]*session.State, len(visitors))
	if len(visitors) == 0 {
		return out, nil
	}
	keys := make([]string, len(visitors))
	for i, v := range visitors {
		keys[i] = s.visitorKey(p, v)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("load %d visitor states of %s: %w", len(keys), s.base(p), err)
	}
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		st := new(session.State)
		if err := json.Unmarshal([]byte(str), st); err != nil {
			return nil, fmt.Errorf("decode visitor state %s: %w", keys[i], err)
		}
		out[i] = st
	}
	return out, nil
}

// checkpointScript: KEYS[1] pos, KEYS[2] open, KEYS[3..] visitor keys;
// ARGV[1] pos value, ARGV[2] ttl ms, then per visitor its JSON, its open
// score ("" = no open session) and its member.
var checkpointScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
local nxt = tonumber(string.match(ARGV[1], '^(%-?%d+)'))
if cur and tonumber(string.match(cur, '^(%-?%d+)')) > nxt then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
local n = #KEYS - 2
for i = 1, n do
  redis.call('SET', KEYS[i+2], ARGV[2+i], 'PX', ARGV[2])
  local score = ARGV[2+n+i]
  local member = ARGV[2+2*n+i]
  if score == '' then redis.call('ZREM', KEYS[2], member) else redis.call('ZADD', KEYS[2], score, member) end
end
return 1
`)

// Checkpoint stores changed visitor states and the clock in one atomic
// write. It returns false, writing nothing, when the stored position is
// already past c.Next: another owner got further, and the caller must reload.
func (s *Store) Checkpoint(ctx context.Context, p Partition, c Clock, changed []*session.State) (bool, error) {
	b := s.base(p)
	n := len(changed)
	keys := make([]string, 0, n+2)
	keys = append(keys, b+":pos", b+":open")
	args := make([]any, 2+3*n)
	args[0] = strconv.FormatInt(c.Next, 10) + " " + strconv.FormatInt(c.WatermarkMs, 10) + " " + strconv.FormatInt(c.NextSweepMs, 10)
	args[1] = s.ttl.Milliseconds()
	for i, st := range changed {
		keys = append(keys, s.visitorKey(p, st.Visitor))
		js, err := json.Marshal(st)
		if err != nil {
			panic("BUG: encode visitor state: " + err.Error())
		}
		args[2+i] = js
		args[2+n+i] = ""
		if st.Open != nil {
			args[2+n+i] = strconv.FormatInt(st.Open.LastMs, 10)
		}
		args[2+2*n+i] = strconv.FormatUint(st.Visitor, 16)
	}
	ok, err := checkpointScript.Run(ctx, s.rdb, keys, args...).Int()
	if err != nil {
		return false, fmt.Errorf("checkpoint %d visitor states of %s at offset %d: %w", n, b, c.Next, err)
	}
	return ok == 1, nil
}
