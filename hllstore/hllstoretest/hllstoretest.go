// Package hllstoretest writes count records and recipient activity for the
// tests of packages that read them (counts, query, the command line) or
// work next to them (the aggregator's rollup job). It is for tests only: the aggregator is the one writer of counts.
package hllstoretest

import (
	"context"
	"fmt"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
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

// Campaign builds recipient activity of a campaign's content ids and days,
// to Put as the aggregator writes it.
type Campaign struct {
	Name string
	days map[hllstore.DayKey]*hllstore.Day
}

// Recipient returns the activity of recipient key on content id cid on the
// UTC day starting at dayStart, to add to.
func (c *Campaign) Recipient(cid string, dayStart int64, key hllstore.RecipientKey) *hllstore.Activity {
	dk := hllstore.DayKey{ContentID: cid, DayStart: dayStart}
	if c.days == nil {
		c.days = map[hllstore.DayKey]*hllstore.Day{}
	}
	if c.days[dk] == nil {
		c.days[dk] = hllstore.NewDay()
	}
	return c.days[dk].Recipient(c.Name, key)
}

// Put writes the days (hllstore.Store.SaveDays), each new to Redis, with
// one open counted in the campaign's day record: a day's write carries a
// change of its records, and the record puts the content id in the
// campaign's index, through which readers find the activity.
func (c *Campaign) Put(ctx context.Context, s *hllstore.Store) error {
	var writes []hllstore.DayWrite
	for dk, d := range c.days {
		d.Record(hllstore.RecordID{Kind: pixelpb.Kind_KIND_OPEN, Campaign: c.Name, Hour: hllstore.DayRecord}).Add(1)
		writes = append(writes, hllstore.DayWrite{Key: dk, Day: d})
	}
	written, err := s.SaveDays(ctx, writes)
	if err != nil {
		return err
	}
	for i, ok := range written {
		if !ok {
			return fmt.Errorf("day %+v refused: it was written before", writes[i].Key)
		}
	}
	return nil
}
