package hllstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pixelpipe/pixelpipe/schemas"
)

// The day index: per content id group and UTC day,
// "<prefix>:ci:{<group>:<yyyymmdd>}" is a set of the content ids of the
// group that have a day hash on that day. It shares the hash tag, and so the
// Redis Cluster slot, of the group's day hashes: a day's index is spread
// over the cluster like its data, where one set per day would put on one
// node the first write of every content id of the day (a burst at 00:00
// UTC) and the whole day's list. Readers scan the Groups sets of a day
// (DayContents). The aggregator adds a content id when it first writes the
// content id's day (SaveDays, a Day at version 0), in a round trip of its
// own that must succeed before the day's script call is sent: an index
// entry without data (the script then failed or was refused) is harmless,
// data without an index entry never happens, also when the aggregator
// crashes between the two. The set lives as long as a day (DayRetention).
// The rollup job (package aggregator) scans the sets to build the week
// rollups of every content id of a final week.

func (s *Store) dayIndexKey(dk DayKey) string {
	return s.dayIndexSet(GroupOf(dk.ContentID), dk.DayStart)
}

// dayIndexSet is the day index of group on the UTC day at dayStart.
func (s *Store) dayIndexSet(group string, dayStart int64) string {
	return s.prefix + ":ci:" + groupTag(group, dayStart)
}

// indexNew adds, in one round trip, the content ids of the days first
// written by writes (version 0) to their days' index sets, and the content
// ids of campaigns new to a day to those campaigns' index sets
// (CampaignContents), and the campaigns with recipient activity to their
// tenants' recipient indexes (recipient.go): all before the data, for the
// reason above. Adding is idempotent from any number of writers.
func (s *Store) indexNew(ctx context.Context, writes []DayWrite) error {
	byKey := map[string][]any{} // by index set
	n := 0
	for _, w := range writes {
		if w.Day.Version == 0 {
			k := s.dayIndexKey(w.Key)
			byKey[k] = append(byKey[k], w.Key.ContentID)
			n++
		}
		n += len(w.Day.campaigns)
	}
	rix := toIndex(writes)
	if n+len(rix) == 0 {
		return nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k, ids := range byKey {
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
		for _, ri := range rix {
			k := s.tenantIndexKey(schemas.Tenant(ri.dk.ContentID))
			p.SAdd(ctx, k, tenantIndexEntry(ri.dk, ri.campaign))
			p.Expire(ctx, k, s.recipientDur)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("index %d new count days and campaigns: %w", n+len(rix), err)
	}
	for _, ri := range rix {
		if ri.d.rindexed == nil {
			ri.d.rindexed = map[string]bool{}
		}
		ri.d.rindexed[ri.campaign] = true
	}
	return nil
}

// DayCursor is the position of a scan of a day's content ids
// (DayContents); the zero DayCursor starts one.
type DayCursor struct {
	group uint32 // the index set being scanned
	pos   uint64 // its SSCAN cursor
	done  bool
}

// Done reports whether the scan is complete.
func (c DayCursor) Done() bool { return c.done }

// DayContents scans the content ids of the UTC day at dayStart, about count
// at a time, from cursor (the zero DayCursor at first) through the day's
// index sets, one per group (SSCAN). It returns the content ids found and
// the cursor to pass next; next.Done() when the scan is complete. Several
// sets may be read in one call, in round trips of their own, until one
// gives content ids. A content id may be returned more than once (SSCAN's
// guarantee).
func (s *Store) DayContents(ctx context.Context, dayStart int64, cursor DayCursor, count int64) (ids []string, next DayCursor, err error) {
	for !cursor.done && len(ids) == 0 {
		key := s.dayIndexSet(groupName(cursor.group), dayStart)
		var pos uint64
		ids, pos, err = s.rdb.SScan(ctx, key, cursor.pos, "", count).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, cursor, fmt.Errorf("scan day index %s: %w", key, err)
		}
		cursor.pos = pos
		if pos == 0 {
			cursor.group++
			cursor.done = cursor.group == Groups
		}
	}
	return ids, cursor, nil
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
