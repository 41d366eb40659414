// Package hllstoretest writes count records for the tests of packages that
// read them (counts, query) or work next to them (the aggregator's rollup
// job). It is for tests only: the aggregator is the one writer of counts.
package hllstoretest

import (
	"context"
	"fmt"

	"github.com/pixelpipe/pixelpipe/hllstore"
)

// Write is one record to Put.
type Write struct {
	Key    hllstore.Key
	Record *hllstore.Record
}

// Put writes records over whatever Redis holds for them, through the
// aggregator's path: it loads their days (hllstore.Store.LoadDays), puts
// each record in its day in place of the one loaded, and saves the days
// (hllstore.Store.SaveDays). A record is written as built with Add,
// AddReason, AddOrder and AddSum from hllstore.NewRecord (one never changed is not
// written); the caller's records are left as they are, so one may be put
// again, changed, into a later state. The days are written with no source
// positions.
func Put(ctx context.Context, s *hllstore.Store, writes []Write) error {
	byDay := map[hllstore.DayKey][]Write{}
	var keys []hllstore.DayKey
	for _, w := range writes {
		dk, _ := w.Key.Split()
		if byDay[dk] == nil {
			keys = append(keys, dk)
		}
		byDay[dk] = append(byDay[dk], w)
	}
	days, err := s.LoadDays(ctx, keys)
	if err != nil {
		return err
	}
	dws := make([]hllstore.DayWrite, len(keys))
	for i, dk := range keys {
		d := days[i]
		for _, w := range byDay[dk] {
			_, id := w.Key.Split()
			*d.Record(id) = *w.Record
		}
		dws[i] = hllstore.DayWrite{Key: dk, Day: d}
	}
	written, err := s.SaveDays(ctx, dws)
	if err != nil {
		return err
	}
	for i, ok := range written {
		if !ok {
			return fmt.Errorf("put %s on %d: another writer moved the day on", keys[i].ContentID, keys[i].DayStart)
		}
	}
	return nil
}

// VisitSums returns the named sums of a visit record (kind KIND_SESSION)
// holding bounces bounces, pages page views and ms milliseconds of visits:
// bounces only when there are some, as the aggregator adds them.
func VisitSums(bounces, pages, ms uint64) map[string]uint64 {
	m := map[string]uint64{hllstore.SumPages: pages, hllstore.SumDurationMs: ms}
	if bounces > 0 {
		m[hllstore.SumBounces] = bounces
	}
	return m
}
