package hllstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Lost reports, for each day, whether Redis lost its holder's last write:
// the day's version there is older than days[i]'s, or the day is gone. A
// Redis server that crashed loses the writes of its last fsync interval,
// and a replica promoted after its master failed lacks what it had not
// received; the writer's next write of such a day is refused (SaveDays),
// but a day it does not write again would go unnoticed. A writer calls
// Lost before it lets go of what it wrote from (the aggregator: before
// committing the Kafka offsets of the events in those writes), and replays
// when a day is lost.
//
// A day another writer moved on since (a newer version, or the same one
// under another token: that writer loaded it before the holder's write and
// replays those events itself) is not lost to its holder. A day at version
// 0 (never written) is never lost. One pipelined round trip: an HMGET of the
// guards per group hash.
func (s *Store) Lost(ctx context.Context, keys []DayKey, days []*Day) ([]bool, error) {
	type hash struct {
		fields []string
		days   []int
		cmd    *redis.SliceCmd
	}
	byHash := map[string]*hash{}
	var order []string
	for i, k := range keys {
		if days[i].Version == 0 {
			continue
		}
		dh, _, _ := s.DayRedisKeys(k)
		h := byHash[dh]
		if h == nil {
			h = &hash{}
			byHash[dh] = h
			order = append(order, dh)
		}
		h.fields = append(h.fields, DayField(k)+fieldGuard)
		h.days = append(h.days, i)
	}
	lost := make([]bool, len(keys))
	if len(order) == 0 {
		return lost, nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, dh := range order {
			h := byHash[dh]
			h.cmd = p.HMGet(ctx, dh, h.fields...)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read the guards of %d count days: %w", len(keys), err)
	}
	for _, dh := range order {
		h := byHash[dh]
		vals := h.cmd.Val()
		if len(vals) != len(h.days) {
			return nil, fmt.Errorf("read the guards of %s: %d values for %d days", dh, len(vals), len(h.days))
		}
		for j, i := range h.days {
			g, _ := vals[j].(string)
			var v uint64
			if g != "" {
				n, err := strconv.ParseUint(guardVersion(g), 10, 64)
				if err != nil {
					return nil, fmt.Errorf("read the guard of %s: %w: %q", s.dayBase(keys[i]), ErrCorrupt, g)
				}
				v = n
			}
			lost[i] = v < days[i].Version
		}
	}
	return lost, nil
}
