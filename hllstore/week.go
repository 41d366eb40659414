package hllstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Week rollups: the day records of a content id over one Monday-to-Sunday
// UTC week, merged (totals and value summed, sketches merged, orders counted
// per day as in the day records). Readers build them on first read of a
// week whose days are final (older than the aggregator's late horizon: no
// write reaches them any more), so a long range reads one hash per week
// instead of seven. Layout: "<prefix>:c:{<content>:w<yyyymmdd>}:w", the date
// being the Monday; fields as in a day hash ("n|<rid>", "h|<rid>", ...) and
// "ver" = 1 once built. A rollup expires with its last day.

// GranularityWeek is the Key granularity of a week rollup (Start: the
// Monday), for Load only.
const GranularityWeek = pixelpb.Granularity(100)

// WeekMs is the length of a week rollup.
const WeekMs = 7 * DayMs

// WeekStart returns the start of the UTC Monday-to-Sunday week that holds
// unixMs (1970-01-05 was a Monday).
func WeekStart(unixMs int64) int64 {
	const monday = 4 * DayMs
	t := unixMs - monday
	w := t / WeekMs
	if t%WeekMs != 0 && t < 0 {
		w--
	}
	return w*WeekMs + monday
}

func (s *Store) weekKey(contentID string, weekStart int64) string {
	return s.prefix + ":c:{" + contentID + ":w" + time.UnixMilli(weekStart).UTC().Format("20060102") + "}:w"
}

// BuildWeeks builds the rollups of the given weeks of contentID from their
// day hashes and stores them (idempotent: a rollup of final days is the same
// whoever builds it). It returns the built records by week.
func (s *Store) BuildWeeks(ctx context.Context, contentID string, weekStarts []int64) ([]map[RecordID]*Record, error) {
	cmds := make([]*redis.MapStringStringCmd, 7*len(weekStarts))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, w := range weekStarts {
			for d := range 7 {
				dk, _, _ := s.DayRedisKeys(DayKey{ContentID: contentID, DayStart: w + int64(d)*DayMs})
				cmds[7*i+d] = p.HGetAll(ctx, dk)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read the days of %d weeks of %s: %w", len(weekStarts), contentID, err)
	}
	// Merge the weeks in parallel, each record's dense sketches first (a
	// sparse one then merges register by register; same result).
	out := make([]map[RecordID]*Record, len(weekStarts))
	errs := make([]error, len(weekStarts))
	var wg sync.WaitGroup
	for i, w := range weekStarts {
		wg.Go(func() {
			days := map[RecordID][]*Record{}
			for d := range 7 {
				day, err := decodeDay(cmds[7*i+d].Val(), nil, nil)
				if err != nil {
					errs[i] = fmt.Errorf("build week %s: %w", s.weekKey(contentID, w), err)
					return
				}
				for id, r := range day.Records {
					days[id] = append(days[id], r)
				}
			}
			week := make(map[RecordID]*Record, len(days))
			for id, rs := range days {
				slices.SortStableFunc(rs, func(a, b *Record) int {
					switch {
					case a.dense == b.dense:
						return 0
					case a.dense:
						return -1
					}
					return 1
				})
				wr := NewRecord()
				for _, r := range rs {
					if err := wr.merge(r); err != nil {
						errs[i] = fmt.Errorf("build week %s: %w", s.weekKey(contentID, w), err)
						return
					}
				}
				wr.dense = rs[0].dense // a merge with a dense sketch is dense
				week[id] = &wr
			}
			out[i] = week
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, w := range weekStarts {
			week := out[i]
			if len(week) == 0 {
				// Nothing counted that week: store nothing, so reads of
				// content ids nobody hit create no keys.
				continue
			}
			args := []any{fieldVersion, 1}
			for id, r := range week {
				rid := rid(id)
				sk, err := r.Sketch.MarshalBinary()
				if err != nil {
					return fmt.Errorf("marshal week sketch: %w", err)
				}
				args = append(args, "n|"+rid, r.Total, "h|"+rid, sk, "oc|"+rid, r.NOrders)
				if len(r.Reasons) > 0 {
					args = append(args, "r|"+rid, encodeCounts(r.Reasons))
				}
				if len(r.Value) > 0 {
					args = append(args, "v|"+rid, encodeCounts(r.Value))
				}
				r.Version = 1
			}
			key := s.weekKey(contentID, w)
			p.HSet(ctx, key, args...)
			p.ExpireAt(ctx, key, time.UnixMilli(w+WeekMs).Add(s.dayDur))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store %d week rollups of %s: %w", len(weekStarts), contentID, err)
	}
	return out, nil
}

// merge adds o into r: totals, orders and values summed, sketches merged.
func (r *Record) merge(o *Record) error {
	r.Total += o.Total
	r.NOrders += o.NOrders
	if err := r.Sketch.Merge(o.Sketch); err != nil {
		return fmt.Errorf("merge sketches: %w", err)
	}
	for k, n := range o.Reasons {
		if r.Reasons == nil {
			r.Reasons = map[string]uint64{}
		}
		r.Reasons[k] += n
	}
	for k, n := range o.Value {
		if r.Value == nil {
			r.Value = map[string]int64{}
		}
		r.Value[k] += n
	}
	return nil
}
