package hllstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

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
	dirty  bool // changed since the last write
}

// Breakdown is the stored state of one BreakdownKey: per dimension, a total
// and a sketch per value. The breakdowns of a content id's day live in the
// day's breakdown hash (see Day), guarded by the day's version and its
// breakdown positions (Day.BPos), and are written at detail flushes only.
type Breakdown struct {
	Dims    map[string]map[string]*SubCount
	changed bool
	// newValues: a value was added since the last write, so the list of
	// the day's breakdown values must be written again.
	newValues bool
	byDim     [5]map[string]*SubCount // Dims by dimension index (Dims order)
}

// NewBreakdown returns an empty breakdown.
func NewBreakdown() Breakdown {
	return Breakdown{Dims: map[string]map[string]*SubCount{}}
}

func (b *Breakdown) sub(dim, value string) *SubCount {
	vals := b.Dims[dim]
	if vals == nil {
		vals = map[string]*SubCount{}
		b.Dims[dim] = vals
		if i := dimIndex(dim); i >= 0 {
			b.byDim[i] = vals
		}
	}
	sc := vals[value]
	if sc == nil {
		sc = &SubCount{Sketch: NewSketch()}
		vals[value] = sc
		b.newValues = true
	}
	return sc
}

var dimNames = [5]string{DimCountry, DimDevice, DimBrowser, DimOS, DimSource}

func dimIndex(dim string) int {
	for i, d := range dimNames {
		if d == dim {
			return i
		}
	}
	return -1
}

// Add counts one event of visitor under value of dim. Past maxValues
// distinct values of a dimension, new values are counted under Other.
func (b *Breakdown) Add(dim, value string, visitor uint64, maxValues int) {
	b.add(dim, b.Dims[dim], value, visitor, maxValues)
}

// AddValues counts one event of visitor under its value in each dimension,
// values in the order of Dims.
func (b *Breakdown) AddValues(values *[5]string, visitor uint64, maxValues int) {
	for i, v := range values {
		b.add(dimNames[i], b.byDim[i], v, visitor, maxValues)
	}
}

func (b *Breakdown) add(dim string, vals map[string]*SubCount, value string, visitor uint64, maxValues int) {
	if value == "" {
		value = Unknown
	}
	sc := vals[value]
	if sc == nil {
		if len(vals) >= maxValues {
			value = Other
		}
		sc = b.sub(dim, value)
	}
	sc.Total++
	sc.Sketch.InsertHash(visitor)
	sc.dirty = true
	b.changed = true
}

// LoadBreakdowns reads breakdowns in two round trips: the list of each
// content id's breakdown values that day, then the counts of its kind's.
func (s *Store) LoadBreakdowns(ctx context.Context, keys []BreakdownKey) ([]Breakdown, error) {
	lists := make([]*redis.SliceCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			dk := DayKey{ContentID: k.ContentID, DayStart: k.DayStart}
			d, _, _ := s.DayRedisKeys(dk)
			lists[i] = p.HMGet(ctx, d, DayField(dk)+fieldBreakdownIDs)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("load %d breakdown lists: %w", len(keys), err)
	}
	bids := make([][]string, len(keys))
	for i, k := range keys {
		v, _ := lists[i].Val()[0].(string)
		all, err := entries(v)
		if err != nil {
			return nil, fmt.Errorf("load breakdowns of %s: %w: values %.40q", k.ContentID, ErrCorrupt, v)
		}
		// Only this kind's values: "<kind>|<dim>|<value>".
		prefix := strconv.Itoa(int(k.Kind)) + "|"
		for _, b := range all {
			if strings.HasPrefix(b, prefix) {
				bids[i] = append(bids[i], b)
			}
		}
	}
	cmds := make([]*redis.SliceCmd, len(keys))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			if len(bids[i]) == 0 {
				continue
			}
			dk := DayKey{ContentID: k.ContentID, DayStart: k.DayStart}
			_, _, bk := s.DayRedisKeys(dk)
			fields := make([]string, 1, 1+len(bids[i]))
			fields[0] = DayField(dk) + fieldBreakdownPositions
			for _, b := range bids[i] {
				fields = append(fields, DayField(dk)+fieldCount+"|"+b)
			}
			cmds[i] = p.HMGet(ctx, bk, fields...)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("load %d breakdowns: %w", len(keys), err)
	}
	out := make([]Breakdown, len(keys))
	for i, k := range keys {
		out[i] = NewBreakdown()
		if cmds[i] == nil {
			continue
		}
		d := &Day{BPos: Positions{}, Breakdowns: map[pixelpb.Kind]*Breakdown{k.Kind: &out[i]}}
		if err := d.decodeBreakdowns(bids[i], cmds[i].Val()); err != nil {
			return nil, fmt.Errorf("load breakdowns of %s: %w", k.ContentID, err)
		}
	}
	return out, nil
}
