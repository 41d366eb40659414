package hllstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pixelpipe/pixelpipe/internal/money"
)

// Week rollups: the day records of a content id over one Monday-to-Sunday
// UTC week, merged (totals, reasons, named sums and value summed, sketches
// merged, orders counted per day as in the day records), so a long range
// reads one hash per week instead of seven. Layout:
// "<prefix>:c:{<content>:w<yyyymmdd>}:w", the date being the Monday; fields
// as a day record's, without the content id ("c|<rid>", "r|<rid>",
// "s|<rid>", "v|<rid>", "oc|<rid>"),
// "ver" = 1 once built, and "dv": the versions of the seven day hashes it
// was built from ("3,0,7,..."; 0 for a day with no hash). A rollup expires
// with its last day.
//
// A rollup is valid only while its days still hold the versions in "dv":
// every write of a day moves its version on, so a day written after the
// rollup was built (an event accepted late, by an aggregator whose clock or
// -aggregator.lateHorizon differs, or a flush delayed by a Redis outage)
// makes the rollup stale, and readers (Load) then build it again from the
// days instead of reading it. Readers check this with one HMGET of "ver"
// per day of the week, in the same round trip as the rollup. Rollups are
// built ahead of reads by the aggregator's rollup job (BuildWeek, once a
// week is final) and, as the fallback, by the first reader that finds one
// missing or stale (BuildWeeks).

// WeekMs is the length of a week rollup.
const WeekMs = 7 * DayMs

// fieldDayVersions holds the versions of the days a rollup was built from.
const fieldDayVersions = "dv"

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

// weekRef names one week rollup.
type weekRef struct {
	contentID string
	start     int64
}

// dayVersions queues, on p, an HMGET of the version of each day of w.
func (s *Store) dayVersions(ctx context.Context, p redis.Pipeliner, w weekRef) (cmds [7]*redis.SliceCmd) {
	for d := range 7 {
		k := DayKey{ContentID: w.contentID, DayStart: w.start + int64(d)*DayMs}
		dk, _, _ := s.DayRedisKeys(k)
		cmds[d] = p.HMGet(ctx, dk, DayField(k)+fieldGuard)
	}
	return cmds
}

// versionsOf returns the "dv" value of the day versions read by dayVersions.
func versionsOf(cmds *[7]*redis.SliceCmd) string {
	var b []byte
	for d, c := range cmds {
		if d > 0 {
			b = append(b, ',')
		}
		v, _ := c.Val()[0].(string)
		v = guardVersion(v)
		if v == "" {
			v = "0"
		}
		b = append(b, v...)
	}
	return string(b)
}

// BuildWeeks builds the rollups of the given weeks of contentID from their
// day hashes and stores them (idempotent: what it stores names the day
// versions it was built from). It returns the built records by week.
func (s *Store) BuildWeeks(ctx context.Context, contentID string, weekStarts []int64) ([]map[RecordID]*Count, error) {
	refs := make([]weekRef, len(weekStarts))
	for i, w := range weekStarts {
		refs[i] = weekRef{contentID, w}
	}
	return s.buildWeeks(ctx, refs, runtime.GOMAXPROCS(0))
}

// BuildWeek builds the week rollups of contentIDs for the week starting at
// weekStart (BuildWeeks for many content ids, in two round trips), and
// returns how many it stored (a content id with nothing counted that week
// gets none). It merges on one goroutine: it is for background work, which
// should leave the other cores to the aggregator's flushes.
func (s *Store) BuildWeek(ctx context.Context, contentIDs []string, weekStart int64) (int, error) {
	refs := make([]weekRef, len(contentIDs))
	for i, c := range contentIDs {
		refs[i] = weekRef{c, weekStart}
	}
	built, err := s.buildWeeks(ctx, refs, 1)
	n := 0
	for _, w := range built {
		if len(w) > 0 {
			n++
		}
	}
	return n, err
}

// WeeksValid reports, per content id, whether its rollup of the week
// starting at weekStart exists and its days still hold the versions it was
// built from: one round trip, eight small commands per content id.
func (s *Store) WeeksValid(ctx context.Context, contentIDs []string, weekStart int64) ([]bool, error) {
	wk := make([]*redis.SliceCmd, len(contentIDs))
	days := make([][7]*redis.SliceCmd, len(contentIDs))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range contentIDs {
			wk[i] = p.HMGet(ctx, s.weekKey(c, weekStart), fieldDayVersions)
			days[i] = s.dayVersions(ctx, p, weekRef{c, weekStart})
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("check %d week rollups: %w", len(contentIDs), err)
	}
	out := make([]bool, len(contentIDs))
	for i := range contentIDs {
		dv, ok := wk[i].Val()[0].(string)
		out[i] = ok && dv == versionsOf(&days[i])
	}
	return out, nil
}

// buildWeeks reads the days of refs in one round trip, merges each week's
// records, and stores the rollups (with the versions of the days read) in a
// second round trip. It merges on up to workers goroutines.
func (s *Store) buildWeeks(ctx context.Context, refs []weekRef, workers int) ([]map[RecordID]*Count, error) {
	keys := make([]DayKey, 0, 7*len(refs))
	for _, w := range refs {
		for d := range 7 {
			keys = append(keys, DayKey{ContentID: w.contentID, DayStart: w.start + int64(d)*DayMs})
		}
	}
	days, err := s.loadDays(ctx, keys, false)
	if err != nil {
		return nil, fmt.Errorf("read the days of %d week rollups: %w", len(refs), err)
	}
	// Merge the weeks in parallel, each record's dense sketches first (a
	// sparse one then merges register by register; same result).
	out := make([]map[RecordID]*Count, len(refs))
	versions := make([]string, len(refs))
	errs := make([]error, len(refs))
	workers = max(min(workers, len(refs)), 1)
	var wg sync.WaitGroup
	for k := range workers {
		wg.Go(func() {
			for i := k; i < len(refs); i += workers {
				out[i], versions[i], errs[i] = s.mergeWeek(refs[i], days[7*i:7*i+7])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, w := range refs {
			week := out[i]
			if len(week) == 0 {
				// Nothing counted that week: store nothing, so reads of
				// content ids nobody hit create no keys.
				continue
			}
			args := []any{fieldVersion, 1, fieldDayVersions, versions[i]}
			for id, r := range week {
				rid := rid(id)
				sk, err := r.Sketch.MarshalBinary()
				if err != nil {
					return fmt.Errorf("marshal week sketch: %w", err)
				}
				args = append(args, fieldCount+"|"+rid, appendCount(nil, r.Total, sk), "oc|"+rid, r.NOrders)
				if len(r.Reasons) > 0 {
					args = append(args, "r|"+rid, encodeCounts(r.Reasons))
				}
				if len(r.Sums) > 0 {
					args = append(args, fieldSums+"|"+rid, encodeCounts(r.Sums))
				}
				if len(r.Value) > 0 {
					args = append(args, "v|"+rid, encodeValues(r.Value))
				}
				r.Version = 1
			}
			key := s.weekKey(w.contentID, w.start)
			p.HSet(ctx, key, args...)
			p.ExpireAt(ctx, key, time.UnixMilli(w.start+WeekMs).Add(s.dayDur))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store %d week rollups: %w", len(refs), err)
	}
	return out, nil
}

// mergeWeek merges the seven days read for w, and returns the rollup's
// records and the day versions ("dv").
func (s *Store) mergeWeek(w weekRef, days []*Day) (map[RecordID]*Count, string, error) {
	byID := map[RecordID][]*Record{}
	var dv []byte
	for d, day := range days {
		if d > 0 {
			dv = append(dv, ',')
		}
		dv = strconv.AppendUint(dv, day.Version, 10)
		for id, r := range day.Records {
			byID[id] = append(byID[id], r)
		}
	}
	week := make(map[RecordID]*Count, len(byID))
	for id, rs := range byID {
		slices.SortStableFunc(rs, func(a, b *Record) int {
			switch {
			case a.dense == b.dense:
				return 0
			case a.dense:
				return -1
			}
			return 1
		})
		wr := NewCount()
		for _, r := range rs {
			if err := wr.merge(&r.Count); err != nil {
				return nil, "", fmt.Errorf("build week %s: %w", s.weekKey(w.contentID, w.start), err)
			}
		}
		wr.dense = rs[0].dense // a merge with a dense sketch is dense
		week[id] = &wr
	}
	return week, string(dv), nil
}

// merge adds o into r: totals, order counts, reasons, named sums and
// values summed, sketches merged.
func (r *Count) merge(o *Count) error {
	r.Total += o.Total
	r.NOrders += o.NOrders
	if err := r.Sketch.Merge(o.Sketch); err != nil {
		return fmt.Errorf("merge sketches: %w", err)
	}
	addCounts(&r.Reasons, o.Reasons)
	addCounts(&r.Sums, o.Sums)
	for k, n := range o.Value {
		if r.Value == nil {
			r.Value = map[string]money.Sum{}
		}
		v := r.Value[k]
		v.AddSum(n)
		r.Value[k] = v
	}
	return nil
}

// addCounts adds the counts of o into *m, making *m when needed.
func addCounts(m *map[string]uint64, o map[string]uint64) {
	for k, n := range o {
		if *m == nil {
			*m = map[string]uint64{}
		}
		(*m)[k] += n
	}
}
