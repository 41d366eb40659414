package hllstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/axiomhq/hyperloglog"
	"github.com/redis/go-redis/v9"

	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Breakdown dimensions: daily human counts of a content id and kind, split
// by one property of the event. The first five count every event (one
// without the property under Unknown); the reports after them count only
// the events that have their property (most events carry no UTM
// parameters, and every counted value costs a sketch insert).
const (
	DimCountry     = "country"
	DimDevice      = "device"
	DimBrowser     = "browser"
	DimOS          = "os"
	DimSource      = "source"       // the referrer's class (search, social, email, ...)
	DimReferrer    = "referrer"     // the referrer's domain
	DimUTMSource   = "utm_source"   // the page URL's utm_source
	DimUTMMedium   = "utm_medium"   // the page URL's utm_medium
	DimUTMCampaign = "utm_campaign" // the page URL's utm_campaign
	DimPage        = "page"         // the page's path
	DimLanding     = "landing"      // the page's path, for the first event of a session
	DimDestination = "destination"  // a click's destination URL: the links of a page, an ad or a mail
	// DimProp holds custom properties as "key=value": an event counts once
	// under each of its properties (Breakdown.Add), none when it has none.
	DimProp = "prop"
)

// NumDims is the number of breakdown dimensions.
const NumDims = 13

// firstOptionalDim is the index of the first dimension that counts only
// events with a value.
const firstOptionalDim = 5

// MaxValueLen bounds a breakdown value in bytes; longer ones are cut (at a
// UTF-8 boundary).
const MaxValueLen = 100

// Dims lists the breakdown dimensions.
func Dims() []string { return slices.Clone(dimNames[:]) }

// Values are an event's values in every dimension, in the order of Dims
// (DimProp, which can have several, left empty: they are added one by one).
type Values [NumDims]string

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
	byDim     [NumDims]map[string]*SubCount // Dims by dimension index (Dims order)
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

var dimNames = [NumDims]string{DimCountry, DimDevice, DimBrowser, DimOS, DimSource,
	DimReferrer, DimUTMSource, DimUTMMedium, DimUTMCampaign, DimPage, DimLanding, DimDestination, DimProp}

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

// AddValues counts one event of visitor under its value in each dimension
// (none in an optional dimension where it has no value).
func (b *Breakdown) AddValues(values *Values, visitor uint64, maxValues int) {
	for i, v := range values {
		if v == "" && i >= firstOptionalDim {
			continue
		}
		b.add(dimNames[i], b.byDim[i], v, visitor, maxValues)
	}
}

// AddBytes is Add of a value held in bytes: it allocates only for a value
// new to the dimension.
func (b *Breakdown) AddBytes(dim string, value []byte, visitor uint64, maxValues int) {
	vals := b.Dims[dim]
	if len(value) > 0 && len(value) <= MaxValueLen {
		if sc := vals[string(value)]; sc != nil {
			b.count(sc, visitor)
			return
		}
	}
	b.add(dim, vals, string(value), visitor, maxValues)
}

func (b *Breakdown) add(dim string, vals map[string]*SubCount, value string, visitor uint64, maxValues int) {
	if value == "" {
		value = Unknown
	}
	if len(value) > MaxValueLen {
		value = cutUTF8(value, MaxValueLen)
	}
	sc := vals[value]
	if sc == nil {
		if len(vals) >= maxValues {
			value = Other
		}
		sc = b.sub(dim, value)
	}
	b.count(sc, visitor)
}

// count counts one event of visitor in sc.
func (b *Breakdown) count(sc *SubCount, visitor uint64) {
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

// cutUTF8 returns the longest prefix of s of at most n bytes that does not
// end inside a UTF-8 sequence.
func cutUTF8(s string, n int) string {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
