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

// Breakdown dimensions: daily human counts of a content id and kind, split
// by one property of the event.
const (
	DimCountry = "country"
	DimDevice  = "device"
	DimBrowser = "browser"
	DimOS      = "os"
	DimSource  = "source"
)

// Dims lists the breakdown dimensions.
func Dims() []string { return []string{DimCountry, DimDevice, DimBrowser, DimOS, DimSource} }

// Breakdown values past the per-record bound are counted under Other; a
// missing value under Unknown.
const (
	Other   = "other"
	Unknown = "unknown"
)

// BreakdownKey names the breakdowns of one content id and kind on one UTC
// day, in every dimension. Only human traffic is broken down.
type BreakdownKey struct {
	ContentID string
	Kind      pixelpb.Kind
	DayStart  int64
}

// SubCount is the count of one breakdown value.
type SubCount struct {
	Total  uint64
	Sketch *hyperloglog.Sketch
}

// Breakdown is the stored state of one BreakdownKey: per dimension, a total
// and a sketch per value, all in one Redis hash written like a Record
// (version and positions), so one write per content id, kind and day carries
// every dimension.
type Breakdown struct {
	Dims    map[string]map[string]*SubCount
	Pos     Positions
	Version uint64
	dirty   map[dimValue]bool
}

type dimValue struct{ dim, value string }

// NewBreakdown returns an empty breakdown.
func NewBreakdown() Breakdown {
	return Breakdown{Dims: map[string]map[string]*SubCount{}, Pos: Positions{}, dirty: map[dimValue]bool{}}
}

func (b *Breakdown) sub(dim, value string) *SubCount {
	vals := b.Dims[dim]
	if vals == nil {
		vals = map[string]*SubCount{}
		b.Dims[dim] = vals
	}
	sc := vals[value]
	if sc == nil {
		sc = &SubCount{Sketch: NewSketch()}
		vals[value] = sc
	}
	return sc
}

// Add counts one event of visitor under value of dim. Past maxValues
// distinct values of a dimension, new values are counted under Other.
func (b *Breakdown) Add(dim, value string, visitor uint64, maxValues int) {
	if value == "" {
		value = Unknown
	}
	if _, ok := b.Dims[dim][value]; !ok && len(b.Dims[dim]) >= maxValues {
		value = Other
	}
	sc := b.sub(dim, value)
	sc.Total++
	sc.Sketch.InsertHash(visitor)
	if b.dirty == nil {
		b.dirty = map[dimValue]bool{}
	}
	b.dirty[dimValue{dim, value}] = true
}

// BreakdownRedisKey returns "<prefix>:c:<content>:<kind>:human:b:d:<yyyymmdd>";
// its fields are "n:<dim>:<value>" and "h:<dim>:<value>".
func (s *Store) BreakdownRedisKey(k BreakdownKey) string {
	return s.prefix + ":c:" + k.ContentID + ":" + strconv.Itoa(int(k.Kind)) + ":human:b:d:" +
		time.UnixMilli(k.DayStart).UTC().Format("20060102")
}

// LoadBreakdowns reads breakdowns in one round trip.
func (s *Store) LoadBreakdowns(ctx context.Context, keys []BreakdownKey) ([]Breakdown, error) {
	cmds := make([]*redis.MapStringStringCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.HGetAll(ctx, s.BreakdownRedisKey(k))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("load %d breakdowns: %w", len(keys), err)
	}
	out := make([]Breakdown, len(keys))
	for i, c := range cmds {
		b, err := decodeBreakdown(c.Val())
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", s.BreakdownRedisKey(keys[i]), err)
		}
		out[i] = b
	}
	return out, nil
}

func decodeBreakdown(fields map[string]string) (Breakdown, error) {
	b := NewBreakdown()
	sub := func(f string) (*SubCount, error) {
		dim, value, ok := strings.Cut(f, ":")
		if !ok {
			return nil, fmt.Errorf("%w: breakdown field %q", ErrCorrupt, f)
		}
		return b.sub(dim, value), nil
	}
	for f, v := range fields {
		switch {
		case f == fieldVersion:
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return b, fmt.Errorf("%w: version %q", ErrCorrupt, v)
			}
			b.Version = n
		case f == fieldPositions:
			ps, err := decodePositions(v)
			if err != nil {
				return b, err
			}
			b.Pos = ps
		case strings.HasPrefix(f, "n:"):
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return b, fmt.Errorf("%w: total %s=%q", ErrCorrupt, f, v)
			}
			sc, err := sub(f[2:])
			if err != nil {
				return b, err
			}
			sc.Total = n
		case strings.HasPrefix(f, "h:"):
			sc, err := sub(f[2:])
			if err != nil {
				return b, err
			}
			if err := sc.Sketch.UnmarshalBinary([]byte(v)); err != nil {
				return b, fmt.Errorf("%w: sketch %s: %v", ErrCorrupt, f, err)
			}
		}
	}
	return b, nil
}

// BreakdownWrite is one breakdown to save.
type BreakdownWrite struct {
	Key       BreakdownKey
	Breakdown *Breakdown
}

// SaveBreakdowns writes the changed values of breakdowns in one round trip,
// with the same version and position guard as Save.
func (s *Store) SaveBreakdowns(ctx context.Context, writes []BreakdownWrite) ([]bool, error) {
	if len(writes) == 0 {
		return nil, nil
	}
	if err := saveScript.Load(ctx, s.rdb).Err(); err != nil {
		return nil, fmt.Errorf("load save script: %w", err)
	}
	cmds := make([]*redis.Cmd, len(writes))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, w := range writes {
			b := w.Breakdown
			args := make([]any, 0, 3+4*len(b.dirty))
			args = append(args, b.Version, s.dayTTL, b.Pos.encode())
			for dv := range b.dirty {
				sc := b.Dims[dv.dim][dv.value]
				sk, err := sc.Sketch.MarshalBinary()
				if err != nil {
					return fmt.Errorf("marshal sketch of %s/%s/%s: %w", s.BreakdownRedisKey(w.Key), dv.dim, dv.value, err)
				}
				f := dv.dim + ":" + dv.value
				args = append(args, "n:"+f, sc.Total, "h:"+f, sk)
			}
			cmds[i] = saveScript.EvalSha(ctx, p, []string{s.BreakdownRedisKey(w.Key)}, args...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("save %d breakdowns: %w", len(writes), err)
	}
	written := make([]bool, len(writes))
	for i, c := range cmds {
		v, err := c.Int()
		if err != nil {
			return nil, fmt.Errorf("save %s: %w", s.BreakdownRedisKey(writes[i].Key), err)
		}
		written[i] = v == 1
		if written[i] {
			writes[i].Breakdown.Version++
			clear(writes[i].Breakdown.dirty)
		}
	}
	return written, nil
}
