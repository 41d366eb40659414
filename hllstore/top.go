package hllstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Top-N index: per kind and UTC day, one sorted set of content ids by total
// and one by unique visitors, of human traffic. Each content id's scores are
// raised by its one owner with ZADD GT, so the index only moves up, and a
// stale owner cannot lower it.
const (
	TopByTotal   = "total"
	TopByUniques = "uniques"
)

func (s *Store) topKey(kind pixelpb.Kind, dayStart int64, by string) string {
	return s.prefix + ":top:" + strconv.Itoa(int(kind)) + ":" + time.UnixMilli(dayStart).UTC().Format("20060102") + ":" + by
}

// TopUpdate is the current total and uniques of one content id's human
// day record.
type TopUpdate struct {
	Key            Key
	Total, Uniques uint64
}

// RaiseTop raises the top-N scores of day records in one round trip, one
// ZADD GT per index with all its members; a score never goes down.
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
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for key, zs := range members {
			p.ZAddGT(ctx, key, zs...)
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

// Top returns the n content ids with the highest score (TopByTotal or
// TopByUniques) for kind on the UTC day starting at dayStart.
func (s *Store) Top(ctx context.Context, kind pixelpb.Kind, dayStart int64, by string, n int) ([]TopEntry, error) {
	if by != TopByTotal && by != TopByUniques {
		return nil, fmt.Errorf("top by %q: use %q or %q", by, TopByTotal, TopByUniques)
	}
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
