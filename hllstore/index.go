package hllstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// The day index: "<prefix>:ci:<yyyymmdd>" is a set of the content ids that
// have a day hash on that UTC day. The aggregator adds a content id when it
// first writes the content id's day (SaveDays, a Day at version 0), in a
// round trip of its own that must succeed before the day's script call is
// sent: an index entry without data (the script then failed or was refused)
// is harmless, data without an index entry never happens, also on Redis
// Cluster where the set and the day hash are in different slots and a
// pipeline's order across nodes is not kept, and also when the aggregator
// crashes between the two. The set lives as long as a day (DayRetention).
// The rollup job (package aggregator) scans it to build the week rollups of
// every content id of a final week.

func (s *Store) dayIndexKey(dayStart int64) string {
	return s.prefix + ":ci:" + time.UnixMilli(dayStart).UTC().Format("20060102")
}

// indexNew adds, in one round trip, the content ids of the days first
// written by writes (version 0) to their days' index sets, and the content
// ids of campaigns new to a day to those campaigns' index sets
// (CampaignContents): both before the data, for the reason above. Adding is
// idempotent from any number of writers.
func (s *Store) indexNew(ctx context.Context, writes []DayWrite) error {
	byDay := map[int64][]any{}
	n := 0
	for _, w := range writes {
		if w.Day.Version == 0 {
			byDay[w.Key.DayStart] = append(byDay[w.Key.DayStart], w.Key.ContentID)
			n++
		}
		n += len(w.Day.campaigns)
	}
	if n == 0 {
		return nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for day, ids := range byDay {
			k := s.dayIndexKey(day)
			p.SAdd(ctx, k, ids...)
			p.Expire(ctx, k, s.dayDur)
		}
		for _, w := range writes {
			for c := range w.Day.campaigns {
				k := s.campaignIndexKey(c, w.Key.DayStart)
				p.SAdd(ctx, k, w.Key.ContentID)
				p.Expire(ctx, k, s.dayDur)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("index %d new count days and campaigns: %w", n, err)
	}
	return nil
}

// DayContents scans the content ids of the UTC day at dayStart (SSCAN from
// cursor, about count at a time). next is 0 when the scan is complete; a
// content id may be returned more than once (SSCAN's guarantee).
func (s *Store) DayContents(ctx context.Context, dayStart int64, cursor uint64, count int64) (ids []string, next uint64, err error) {
	ids, next, err = s.rdb.SScan(ctx, s.dayIndexKey(dayStart), cursor, "", count).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, fmt.Errorf("scan day index %s: %w", s.dayIndexKey(dayStart), err)
	}
	return ids, next, nil
}

// Rollup progress: "<prefix>:rolled:<yyyymmdd>" (the Monday) marks a week
// whose rollups the job built for every content id of its days' indexes.

func (s *Store) rolledKey(weekStart int64) string {
	return s.prefix + ":rolled:" + time.UnixMilli(weekStart).UTC().Format("20060102")
}

// WeekRolled reports whether MarkWeekRolled marked the week.
func (s *Store) WeekRolled(ctx context.Context, weekStart int64) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.rolledKey(weekStart)).Result()
	if err != nil {
		return false, fmt.Errorf("read rollup mark %s: %w", s.rolledKey(weekStart), err)
	}
	return n == 1, nil
}

// MarkWeekRolled marks the week rolled up, for ttl.
func (s *Store) MarkWeekRolled(ctx context.Context, weekStart int64, ttl time.Duration) error {
	if err := s.rdb.Set(ctx, s.rolledKey(weekStart), time.Now().UTC().Format(time.RFC3339), ttl).Err(); err != nil {
		return fmt.Errorf("write rollup mark %s: %w", s.rolledKey(weekStart), err)
	}
	return nil
}
