package hllstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// LoadDays reads whole days in two round trips: the guard fields of each
// day (with the list of its records), then the fields of its records and
// its breakdown and order hashes when its guard says they exist. A day with
// nothing stored gives an empty Day, after one HMGET.
func (s *Store) LoadDays(ctx context.Context, keys []DayKey) ([]*Day, error) {
	return s.loadDays(ctx, keys, true)
}

// loadDays is LoadDays; without all, it reads the day records only (no
// hour records, orders or breakdowns: what a week rollup needs).
func (s *Store) loadDays(ctx context.Context, keys []DayKey, all bool) ([]*Day, error) {
	guards := make([]*redis.SliceCmd, len(keys))
	orders := make([]*redis.MapStringStringCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			d, _, _ := s.DayRedisKeys(k)
			f := DayField(k)
			guards[i] = p.HMGet(ctx, d, f+guardFields[0], f+guardFields[1], f+guardFields[2])
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("load %d count days: %w", len(keys), err)
	}
	out := make([]*Day, len(keys))
	ids := make([][]RecordID, len(keys))
	bids := make([][]string, len(keys))
	for i, k := range keys {
		d, recs, bs, err := decodeGuard(guards[i].Val())
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", s.dayBase(k), err)
		}
		out[i], ids[i], bids[i] = d, recs, bs
	}
	// The lists of the hours that have records, when hours are read.
	if all {
		lists := make([]*redis.SliceCmd, len(keys))
		_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				if out[i].hours == 0 {
					continue
				}
				d, _, _ := s.DayRedisKeys(k)
				f := DayField(k)
				var fields []string
				for h := range 24 {
					if out[i].hours&(1<<uint(h)) != 0 {
						fields = append(fields, f+guardFields[3+h])
					}
				}
				lists[i] = p.HMGet(ctx, d, fields...)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("load the hour lists of %d count days: %w", len(keys), err)
		}
		for i, k := range keys {
			if lists[i] == nil {
				continue
			}
			if ids[i], err = parseIDs(ids[i], lists[i].Val()); err != nil {
				return nil, fmt.Errorf("load %s: %w", s.dayBase(k), err)
			}
		}
	}
	// The records' fields: one HMGET per group hash and day.
	type read struct {
		cmd  *redis.SliceCmd
		recs []RecordID
	}
	reads := make([][2]read, len(keys))
	bds := make([]*redis.SliceCmd, len(keys))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			dh, hh, bk := s.DayRedisKeys(k)
			f := DayField(k)
			if all && len(bids[i]) > 0 {
				fields := make([]string, 1, 1+len(bids[i]))
				fields[0] = f + fieldBreakdownPositions
				for _, b := range bids[i] {
					fields = append(fields, f+fieldCount+"|"+b)
				}
				bds[i] = p.HMGet(ctx, bk, fields...)
			}
			if all && out[i].ordersStored {
				orders[i] = p.HGetAll(ctx, s.ordersKey(k))
			}
			var fields [2][]string
			for _, id := range ids[i] {
				h := 0
				if id.Hour != DayRecord {
					if !all {
						continue
					}
					h = 1
				}
				reads[i][h].recs = append(reads[i][h].recs, id)
				r := rid(id)
				for _, rf := range recordFields {
					fields[h] = append(fields[h], f+rf+"|"+r)
				}
			}
			for h, key := range [2]string{dh, hh} {
				if len(fields[h]) > 0 {
					reads[i][h].cmd = p.HMGet(ctx, key, fields[h]...)
				}
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("load the records of %d count days: %w", len(keys), err)
	}
	for i, k := range keys {
		d := out[i]
		if c := orders[i]; c != nil {
			if err := d.decodeOrders(c.Val()); err != nil {
				return nil, fmt.Errorf("load %s: %w", s.dayBase(k), err)
			}
		}
		if c := bds[i]; c != nil {
			if err := d.decodeBreakdowns(bids[i], c.Val()); err != nil {
				return nil, fmt.Errorf("load %s: %w", s.dayBase(k), err)
			}
		}
		for _, rd := range reads[i] {
			if rd.cmd == nil {
				continue
			}
			vals := rd.cmd.Val()
			if len(vals) != len(rd.recs)*len(recordFields) {
				return nil, fmt.Errorf("load %s: %d values for %d records", s.dayBase(k), len(vals), len(rd.recs))
			}
			for j, id := range rd.recs {
				r := d.Records[id]
				if r == nil {
					nr := NewRecord()
					r = &nr
					d.Records[id] = r
				}
				for fi, rf := range recordFields {
					if v, ok := vals[j*len(recordFields)+fi].(string); ok {
						if err := r.decodeField(rf, v); err != nil {
							return nil, fmt.Errorf("load %s: %w", s.dayBase(k), err)
						}
					}
				}
			}
		}
		for _, r := range d.Records {
			r.Version, r.savedTotal = d.Version, r.Total
		}
	}
	return out, nil
}

// decodeBreakdowns adds a day's breakdowns: vals holds its breakdown
// positions, then the count of each of bids ("<kind>|<dim>|<value>").
func (d *Day) decodeBreakdowns(bids []string, vals []any) error {
	if len(vals) != 1+len(bids) {
		return fmt.Errorf("%w: %d breakdown values for %d", ErrCorrupt, len(vals), len(bids))
	}
	if v, ok := vals[0].(string); ok {
		if err := decodePositions(d.BPos, v); err != nil {
			return fmt.Errorf("%w: breakdown positions %q", ErrCorrupt, v)
		}
	}
	for j, bid := range bids {
		v, ok := vals[1+j].(string)
		if !ok {
			continue
		}
		if err := d.decodeBreakdownField(bid, v); err != nil {
			return err
		}
	}
	for _, b := range d.Breakdowns {
		b.newValues = false
	}
	return nil
}

// decodeOrders adds a day's orders. A field's value is the source position
// "<partition>:<offset>" of the event that counted the order (any other
// value: unknown, so every event carrying the order is a duplicate).
func (d *Day) decodeOrders(orders map[string]string) error {
	for f, v := range orders {
		if len(f) < 2 || (f[0] != 'd' && f[0] != 'h') || f[1] != '|' {
			return fmt.Errorf("%w: order field %q", ErrCorrupt, f)
		}
		n := 3 // "<kind>|<class>|<campaign>|<order>"
		if f[0] == 'h' {
			n = 4
		}
		parts := strings.SplitN(f[2:], "|", n+1)
		if len(parts) != n+1 {
			return fmt.Errorf("%w: order field %q", ErrCorrupt, f)
		}
		id, ok := parseRID(strings.Join(parts[:n], "|"))
		if !ok {
			return fmt.Errorf("%w: order field %q", ErrCorrupt, f)
		}
		r := d.Records[id]
		if r == nil {
			nr := NewRecord()
			r = &nr
			d.Records[id] = r
		}
		if r.Orders == nil {
			r.Orders = map[string]struct{}{}
		}
		r.Orders[parts[n]] = struct{}{}
		at := orderPos{p: -1}
		if ptxt, otxt, ok := strings.Cut(v, ":"); ok {
			p, err1 := strconv.ParseInt(ptxt, 10, 32)
			o, err2 := strconv.ParseInt(otxt, 10, 64)
			if err1 == nil && err2 == nil && p >= 0 {
				at = orderPos{int32(p), o}
			}
		}
		if d.orders == nil {
			d.orders = map[string]orderPos{}
		}
		if prev, ok := d.orders[parts[n]]; !ok || prev.p < 0 {
			d.orders[parts[n]] = at
		}
	}
	return nil
}
