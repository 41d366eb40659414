// Package hllstore is the only package that knows how counts are laid out in
// Redis. One Redis hash per content id, event kind and UTC day holds the exact
// total, the serialized HyperLogLog sketch of visitor keys, its estimate, and
// the positions of the last source hits applied to it.
//
// Writes are absolute (the new total and sketch, not an increment) and go
// through a one-key Lua script that refuses to move any position backwards.
// So a replay, a go-redis retry of a write that already happened, or a stale
// owner after a consumer-group rebalance can never count an event twice, and
// every write touches one key, which keeps it valid on Redis Cluster.
//
// Store is safe for concurrent use.
package hllstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/axiomhq/hyperloglog"
	"github.com/redis/go-redis/v9"

	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// DayMs is the length of a day bucket in milliseconds.
const DayMs = int64(24 * time.Hour / time.Millisecond)

// Precision of the sketches: 2^14 registers, a standard error of
// 1.04/sqrt(16384) ≈ 0.81%, at most 16 KiB per dense sketch. Sparse sketches
// (few visitors) are far smaller and exact in practice.
const Precision = 14

// NewSketch returns an empty sketch of the store's precision.
func NewSketch() *hyperloglog.Sketch { return hyperloglog.New14() }

// Key names one counted bucket.
type Key struct {
	ContentID  string
	Kind       pixelpb.Kind
	DayStartMs int64
}

// DayStart returns the start of the UTC day that holds unixMs.
func DayStart(unixMs int64) int64 {
	d := unixMs / DayMs
	if unixMs%DayMs != 0 && unixMs < 0 {
		d--
	}
	return d * DayMs
}

// Positions maps a source partition of pixel.hits.v1 to the offset of the last
// hit applied to a record.
type Positions map[int32]int64

// Covers reports whether the hit at partition p, offset o was already applied.
func (ps Positions) Covers(p int32, o int64) bool {
	last, ok := ps[p]
	return ok && o <= last
}

func (ps Positions) encode() string {
	var b strings.Builder
	for p, o := range ps {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(int64(p), 10))
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(o, 10))
	}
	return b.String()
}

func decodePositions(s string) (Positions, error) {
	ps := Positions{}
	if s == "" {
		return ps, nil
	}
	for _, part := range strings.Split(s, ",") {
		ps1, os1, ok := strings.Cut(part, ":")
		p, err1 := strconv.ParseInt(ps1, 10, 32)
		o, err2 := strconv.ParseInt(os1, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w: bad position %q", ErrCorrupt, part)
		}
		ps[int32(p)] = o
	}
	return ps, nil
}

// Record is the stored state of one Key.
type Record struct {
	Total  uint64
	Sketch *hyperloglog.Sketch
	Pos    Positions
}

// ErrCorrupt means a stored record could not be decoded.
var ErrCorrupt = errors.New("corrupt count record")

// Config configures a Store.
type Config struct {
	// Prefix starts every key. Default "pp".
	Prefix string
	// Retention is how long a day record lives after its last write.
	// Default 400 days.
	Retention time.Duration
}

// Store reads and writes count records.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// New returns a Store on rdb.
func New(rdb redis.UniversalClient, cfg Config) *Store {
	if cfg.Prefix == "" {
		cfg.Prefix = "pp"
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 400 * 24 * time.Hour
	}
	return &Store{rdb: rdb, prefix: cfg.Prefix, ttl: cfg.Retention}
}

// RedisKey returns the Redis key of k:
// "<prefix>:c:<content id>:<kind number>:d:<yyyymmdd>".
func (s *Store) RedisKey(k Key) string {
	day := time.UnixMilli(k.DayStartMs).UTC().Format("20060102")
	return s.prefix + ":c:" + k.ContentID + ":" + strconv.Itoa(int(k.Kind)) + ":d:" + day
}

// Load reads the records of keys in one round trip. A key with no record
// gives an empty Record (zero total, empty sketch, no positions).
func (s *Store) Load(ctx context.Context, keys []Key) ([]Record, error) {
	cmds := make([]*redis.SliceCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.HMGet(ctx, s.RedisKey(k), "n", "h", "pos")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("load %d count records: %w", len(keys), err)
	}
	out := make([]Record, len(keys))
	for i, c := range cmds {
		r, err := decodeRecord(c.Val())
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", s.RedisKey(keys[i]), err)
		}
		out[i] = r
	}
	return out, nil
}

func decodeRecord(vals []any) (Record, error) {
	r := Record{Sketch: NewSketch(), Pos: Positions{}}
	if len(vals) != 3 {
		return r, fmt.Errorf("%w: %d fields", ErrCorrupt, len(vals))
	}
	if n, ok := vals[0].(string); ok {
		v, err := strconv.ParseUint(n, 10, 64)
		if err != nil {
			return r, fmt.Errorf("%w: total %q", ErrCorrupt, n)
		}
		r.Total = v
	}
	if h, ok := vals[1].(string); ok && h != "" {
		if err := r.Sketch.UnmarshalBinary([]byte(h)); err != nil {
			return r, fmt.Errorf("%w: sketch: %v", ErrCorrupt, err)
		}
	}
	if p, ok := vals[2].(string); ok {
		ps, err := decodePositions(p)
		if err != nil {
			return r, err
		}
		r.Pos = ps
	}
	return r, nil
}

// saveScript writes a record if no stored position is ahead of the new ones.
// KEYS[1] record; ARGV: total, sketch, estimate, ttl seconds, positions.
// Returns 1 when written, 0 when refused.
var saveScript = redis.NewScript(`
local function parse(s)
  local t = {}
  if s then
    for p, o in string.gmatch(s, "(%-?%d+):(%-?%d+)") do t[p] = tonumber(o) end
  end
  return t
end
local stored = parse(redis.call('HGET', KEYS[1], 'pos'))
local new = parse(ARGV[5])
for p, o in pairs(stored) do
  if new[p] == nil or new[p] < o then return 0 end
end
redis.call('HSET', KEYS[1], 'n', ARGV[1], 'h', ARGV[2], 'u', ARGV[3], 'pos', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
`)

// Write is one record to save.
type Write struct {
	Key    Key
	Record Record
}

// Save writes records in one pipelined round trip. written[i] is false when
// Redis holds a newer state of writes[i] (another owner got further): the
// caller must drop its copy and load the record again.
func (s *Store) Save(ctx context.Context, writes []Write) (written []bool, err error) {
	if len(writes) == 0 {
		return nil, nil
	}
	// Make sure the script is cached so the pipeline can use EVALSHA.
	if err := saveScript.Load(ctx, s.rdb).Err(); err != nil {
		return nil, fmt.Errorf("load save script: %w", err)
	}
	ttl := strconv.FormatInt(int64(s.ttl/time.Second), 10)
	cmds := make([]*redis.Cmd, len(writes))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, w := range writes {
			sk, err := w.Record.Sketch.MarshalBinary()
			if err != nil {
				return fmt.Errorf("marshal sketch of %s: %w", s.RedisKey(w.Key), err)
			}
			cmds[i] = saveScript.EvalSha(ctx, p, []string{s.RedisKey(w.Key)},
				w.Record.Total, sk, w.Record.Sketch.Estimate(), ttl, w.Record.Pos.encode())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("save %d count records: %w", len(writes), err)
	}
	written = make([]bool, len(writes))
	for i, c := range cmds {
		v, err := c.Int()
		if err != nil {
			return nil, fmt.Errorf("save %s: %w", s.RedisKey(writes[i].Key), err)
		}
		written[i] = v == 1
	}
	return written, nil
}

// Stats is the count of one content id and kind over a range of days.
type Stats struct {
	// Total is the exact number of distinct events.
	Total uint64
	// Uniques is the HyperLogLog estimate of distinct visitors over the
	// whole range (not the sum of daily uniques).
	Uniques uint64
}

// Query returns the stats of contentID and kind over the UTC days that start
// in [fromDayMs, toDayMs).
func (s *Store) Query(ctx context.Context, contentID string, kind pixelpb.Kind, fromDayMs, toDayMs int64) (Stats, error) {
	var keys []Key
	for d := DayStart(fromDayMs); d < toDayMs; d += DayMs {
		keys = append(keys, Key{ContentID: contentID, Kind: kind, DayStartMs: d})
	}
	recs, err := s.Load(ctx, keys)
	if err != nil {
		return Stats{}, err
	}
	merged := NewSketch()
	var st Stats
	for _, r := range recs {
		st.Total += r.Total
		if err := merged.Merge(r.Sketch); err != nil {
			return Stats{}, fmt.Errorf("merge sketches of %s: %w", contentID, err)
		}
	}
	st.Uniques = merged.Estimate()
	return st, nil
}
