package hllstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Top-N index: per kind and UTC day, one sorted set of content ids by total
// and one by unique visitors, of human traffic, holding the TopDepth best
// content ids: "<prefix>:top:<kind>:<yyyymmdd>:<total|uniques>". Each
// content id's scores are raised by its one owner with ZADD GT, so a score
// only moves up, and a stale owner cannot lower it. The sets are per day,
// shared by every content id, so each is one Redis Cluster slot; they stay
// small and cheap to write however many content ids a day has: a writer
// first reads the TopDepth-th best score of each set it raises, then sends
// only the content ids above it (the others cannot enter), and trims the
// set back to TopDepth members. A content id left out or trimmed is sent
// again when its score rises (scores are absolute, not increments).
const (
	TopByTotal   = "total"
	TopByUniques = "uniques"
)

// TopDepth is how many content ids a top-N set keeps: the most Top
// returns.
const TopDepth = 1000

func (s *Store) topKey(kind pixelpb.Kind, dayStart int64, by string) string {
	return s.prefix + ":top:" + strconv.Itoa(int(kind)) + ":" + time.UnixMilli(dayStart).UTC().Format("20060102") + ":" + by
}

// TopUpdate is the current total and uniques of one content id's human
// day record.
type TopUpdate struct {
	Key            Key
	Total, Uniques uint64
}

// RaiseTop raises the top-N scores of day records in two round trips: the
// TopDepth-th best score of each set concerned, then per set one ZADD GT
// with the members above it, a trim to TopDepth members and the set's
// expiry. A score never goes down.
func (s *Store) RaiseTop(ctx context.Context, updates []TopUpdate) error {
	if len(updates) == 0 {
		return nil
	}
	members := map[string][]redis.Z{}
	for _, u := range updates {
		tk := s.topKey(u.Key.Kind, u.Key.Start, TopByTotal)
		uk := s.topKey(u.Key.Kind, u.Key.Start, TopByUniques)
		members[tk] = append(members[tk], redis.Z{Score: float64(u.Total), Member: u.Key.ContentID})
		members[uk] = append(members[uk], redis.Z{Score: float64(u.Uniques), Member: u.Key.ContentID})
	}
	floors := make(map[string]*redis.ZSliceCmd, len(members))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for key := range members {
			floors[key] = p.ZRevRangeWithScores(ctx, key, TopDepth-1, TopDepth-1)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("read top-N floors of %d records: %w", len(updates), err)
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for key, zs := range members {
			// A full set admits only scores above its last; a score equal
			// to it would tie for the last place (or is already there).
			if f := floors[key].Val(); len(f) == 1 {
				zs = slices.DeleteFunc(zs, func(z redis.Z) bool { return z.Score <= f[0].Score })
				if len(zs) == 0 {
					continue
				}
			}
			p.ZAddGT(ctx, key, zs...)
			p.ZRemRangeByRank(ctx, key, 0, -TopDepth-1)
			p.Expire(ctx, key, s.dayDur)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("raise top-N of %d records: %w", len(updates), err)
	}
	return nil
}

// TopEntry is one content id of a top-N list.
type TopEntry struct {
	ContentID string
	Score     uint64
}

// Top returns the n content ids (at most TopDepth) with the highest score
// (TopByTotal or TopByUniques) for kind on the UTC day starting at
// dayStart.
func (s *Store) Top(ctx context.Context, kind pixelpb.Kind, dayStart int64, by string, n int) ([]TopEntry, error) {
	if by != TopByTotal && by != TopByUniques {
		return nil, fmt.Errorf("top by %q: use %q or %q", by, TopByTotal, TopByUniques)
	}
	n = min(n, TopDepth)
	zs, err := s.rdb.ZRevRangeWithScores(ctx, s.topKey(kind, dayStart, by), 0, int64(n)-1).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read top %s: %w", by, err)
	}
	out := make([]TopEntry, len(zs))
	for i, z := range zs {
		out[i] = TopEntry{ContentID: fmt.Sprint(z.Member), Score: uint64(z.Score)}
	}
	return out, nil
}
