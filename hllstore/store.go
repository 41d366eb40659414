package hllstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Config configures a Store.
type Config struct {
	// Prefix starts every key. Default "pp".
	Prefix string
	// HourRetention and DayRetention are how long hour and day records live
	// after their first write (their writes end within the aggregator's late
	// horizon). Defaults 35 days and 400 days.
	HourRetention, DayRetention time.Duration
}

// Store reads and writes count records.
type Store struct {
	rdb     redis.UniversalClient
	prefix  string
	hourTTL string
	dayTTL  string
	dayDur  time.Duration
}

// New returns a Store on rdb.
func New(rdb redis.UniversalClient, cfg Config) *Store {
	if cfg.Prefix == "" {
		cfg.Prefix = "pp"
	}
	if cfg.HourRetention <= 0 {
		cfg.HourRetention = 35 * 24 * time.Hour
	}
	if cfg.DayRetention <= 0 {
		cfg.DayRetention = 400 * 24 * time.Hour
	}
	return &Store{
		rdb: rdb, prefix: cfg.Prefix,
		hourTTL: strconv.FormatInt(int64(cfg.HourRetention/time.Second), 10),
		dayTTL:  strconv.FormatInt(int64(cfg.DayRetention/time.Second), 10),
		dayDur:  cfg.DayRetention,
	}
}

// Load reads the records of keys in one round trip. A key with no record
// gives an empty Record.
func (s *Store) Load(ctx context.Context, keys []Key) ([]Record, error) {
	cmds := make([]*redis.MapStringStringCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.HGetAll(ctx, s.RedisKey(k))
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

// saveScript writes a record if Redis still holds the version the caller
// loaded (optimistic concurrency: nobody wrote in between, not even an earlier
// attempt of the same write that a client retry would repeat) and no stored
// position is ahead of the new ones.
// KEYS[1] record; ARGV[1] expected version, ARGV[2] ttl seconds, ARGV[3]
// positions, then field/value pairs. Returns 1 when written, 0 when refused.
var saveScript = redis.NewScript(`
local function parse(s)
  local t = {}
  if s then
    for p, o in string.gmatch(s, "(%-?%d+):(%-?%d+)") do t[p] = tonumber(o) end
  end
  return t
end
local cur = redis.call('HMGET', KEYS[1], 'ver', 'pos')
local ver = tonumber(cur[1]) or 0
if ver ~= tonumber(ARGV[1]) then return 0 end
local stored = parse(cur[2])
local new = parse(ARGV[3])
for p, o in pairs(stored) do
  if new[p] == nil or new[p] < o then return 0 end
end
redis.call('HSET', KEYS[1], 'ver', ver + 1, 'pos', ARGV[3], unpack(ARGV, 4))
if ver == 0 then
  -- Retention runs from the first write: a bucket's writes end within the
  -- late horizon, so this differs from the last write by days at most, and
  -- saves an EXPIRE on every write.
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1
`)

// Write is one record to save.
type Write struct {
	Key    Key
	Record *Record
}

// Save writes records in one pipelined round trip, and adds campaign records
// to their campaign's index. written[i] is false when Redis no longer holds
// the version writes[i] was loaded at (another owner wrote, or Redis lost
// writes in a crash): the caller's copy is stale and must be dropped. A
// written record's version moves on and the orders it added are no longer new.
func (s *Store) Save(ctx context.Context, writes []Write) (written []bool, err error) {
	if len(writes) == 0 {
		return nil, nil
	}
	// Make sure the script is cached so the pipeline can use EVALSHA.
	if err := saveScript.Load(ctx, s.rdb).Err(); err != nil {
		return nil, fmt.Errorf("load save script: %w", err)
	}
	cmds := make([]*redis.Cmd, len(writes))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, w := range writes {
			args, err := s.saveArgs(w)
			if err != nil {
				return err
			}
			cmds[i] = saveScript.EvalSha(ctx, p, []string{s.RedisKey(w.Key)}, args...)
			if w.Key.Campaign != "" && w.Key.Gran == pixelpb.Granularity_GRANULARITY_DAY {
				// Idempotent from any number of writers.
				ik := s.campaignIndexKey(w.Key.Campaign, w.Key.Start)
				p.SAdd(ctx, ik, w.Key.ContentID)
				p.Expire(ctx, ik, s.dayDur)
			}
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
		if written[i] {
			writes[i].Record.Version++
			writes[i].Record.newOrders = writes[i].Record.newOrders[:0]
		}
	}
	return written, nil
}

func (s *Store) saveArgs(w Write) ([]any, error) {
	r := w.Record
	sk, err := r.Sketch.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("marshal sketch of %s: %w", s.RedisKey(w.Key), err)
	}
	ttl := s.dayTTL
	if w.Key.Gran == pixelpb.Granularity_GRANULARITY_HOUR {
		ttl = s.hourTTL
	}
	args := make([]any, 0, 8+2*(len(r.Reasons)+len(r.Value)+len(r.newOrders)))
	args = append(args, r.Version, ttl, r.Pos.encode(),
		fieldTotal, r.Total, fieldSketch, sk)
	for reason, n := range r.Reasons {
		args = append(args, "r:"+reason, n)
	}
	for cur, v := range r.Value {
		args = append(args, "v:"+cur, v)
	}
	for _, o := range r.newOrders {
		args = append(args, "o:"+o, 1)
	}
	return args, nil
}

// CampaignContents returns the content ids that campaign had hits on in the
// UTC day starting at dayStart.
func (s *Store) CampaignContents(ctx context.Context, campaign string, dayStart int64) ([]string, error) {
	ids, err := s.rdb.SMembers(ctx, s.campaignIndexKey(campaign, dayStart)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read campaign index of %s: %w", campaign, err)
	}
	return ids, nil
}
