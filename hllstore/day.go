package hllstore

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/axiomhq/hyperloglog"
	"github.com/redis/go-redis/v9"

	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// DayKey names the records of one content id on one UTC day: every kind,
// traffic class, campaign, hour and the day itself, and the day's breakdowns.
type DayKey struct {
	ContentID string
	DayStart  int64
}

// DayRecord is the Hour of a RecordID that names the whole day.
const DayRecord int8 = -1

// RecordID names one record inside a Day.
type RecordID struct {
	// Campaign, when set, scopes the record to the hits of this campaign on
	// the day's content id.
	Campaign string
	Kind     pixelpb.Kind
	Class    Class
	// Hour is the UTC hour (0-23) of an hour record, DayRecord for the day.
	Hour int8
}

// Split returns the Day and the record inside it that k names.
func (k Key) Split() (DayKey, RecordID) {
	d := DayStart(k.Start)
	id := RecordID{Campaign: k.Campaign, Kind: k.Kind, Class: k.Class, Hour: DayRecord}
	if k.Gran == pixelpb.Granularity_GRANULARITY_HOUR {
		id.Hour = int8((k.Start - d) / HourMs)
	}
	return DayKey{ContentID: k.ContentID, DayStart: d}, id
}

// Key returns the Key of record id of day dk.
func (dk DayKey) Key(id RecordID) Key {
	k := Key{ContentID: dk.ContentID, Campaign: id.Campaign, Kind: id.Kind, Class: id.Class, Gran: pixelpb.Granularity_GRANULARITY_DAY, Start: dk.DayStart}
	if id.Hour != DayRecord {
		k.Gran, k.Start = pixelpb.Granularity_GRANULARITY_HOUR, dk.DayStart+int64(id.Hour)*HourMs
	}
	return k
}

// Day is the stored state of one DayKey. One version, one write token and
// one set of positions guard all of it: a write of a Day (part of one script
// call per content id group, see SaveDays) carries every record of the day
// that changed since the last write, and at detail flushes its breakdowns.
type Day struct {
	// Version counts the writes of the day. Readers compare it (a week
	// rollup names the versions of its days).
	Version uint64
	// guard is the guard value (fieldGuard) of the last write the holder
	// loaded or made; a write succeeds only over it (see saveDaysScript).
	guard, pendingGuard string
	// Pos holds the last source position applied to the records, BPos the
	// last applied to the breakdowns (written at detail flushes only).
	Pos, BPos Positions
	// Records holds the day's hour and day records.
	Records map[RecordID]*Record
	// Breakdowns holds the human breakdowns per kind.
	Breakdowns map[pixelpb.Kind]*Breakdown
	// campaigns lists campaigns whose index entry must still be written.
	campaigns map[string]bool
	// newRecords: bit h (0-23) when an hour record of hour h was added
	// since the last write, bit 24 when a day record was, so that list of
	// the day's records (fieldIDs, one per hour and one for the day) must
	// be written again.
	newRecords uint32
	// ordersStored: the day's order hash exists (its retention is set at
	// its first write).
	ordersStored bool
	// hours: bit h when hour h has records (as loaded; a write stores it
	// in the guard).
	hours uint32
}

// NewDay returns an empty Day.
func NewDay() *Day {
	return &Day{Pos: Positions{}, BPos: Positions{}, Records: map[RecordID]*Record{}, Breakdowns: map[pixelpb.Kind]*Breakdown{}}
}

// Record returns the record id, creating an empty one when absent.
func (d *Day) Record(id RecordID) *Record {
	r := d.Records[id]
	if r == nil {
		nr := NewRecord()
		r = &nr
		d.setRecord(id, r)
	}
	return r
}

// setRecord adds or replaces the record id.
func (d *Day) setRecord(id RecordID, r *Record) {
	if _, ok := d.Records[id]; !ok {
		d.newRecords |= idsBit(id)
	}
	d.Records[id] = r
	if id.Campaign != "" {
		if d.campaigns == nil {
			d.campaigns = map[string]bool{}
		}
		d.campaigns[id.Campaign] = true
	}
}

// Breakdown returns the breakdown of kind, creating an empty one.
func (d *Day) Breakdown(kind pixelpb.Kind) *Breakdown {
	b := d.Breakdowns[kind]
	if b == nil {
		nb := NewBreakdown()
		b = &nb
		d.Breakdowns[kind] = b
	}
	return b
}

// Dirty reports whether a record changed since the last write.
func (d *Day) Dirty() bool {
	for _, r := range d.Records {
		if r.dirty {
			return true
		}
	}
	return false
}

// DetailsDirty reports whether a breakdown changed since the last write.
func (d *Day) DetailsDirty() bool {
	for _, b := range d.Breakdowns {
		if b.changed {
			return true
		}
	}
	return false
}

// Layout. Content ids fall into Groups groups (GroupOf, computed from the
// content id alone). Per group and UTC day three hashes hold the day
// records, the hour records and the breakdowns of every content id of the
// group, and per content id and day a small hash its orders; all share a
// Redis Cluster hash tag (the braces), so one script call writes the
// changed days of a whole group, and all of it lives in one cluster slot:
//
//	<prefix>:c:{<group>:<yyyymmdd>}:d            day records and guards of the group's content ids
//	<prefix>:c:{<group>:<yyyymmdd>}:h            their hour records (kept HourRetention)
//	<prefix>:c:{<group>:<yyyymmdd>}:b            their breakdowns
//	<prefix>:c:{<group>:<yyyymmdd>}:<content>:o  a content id's orders
//
// In the group hashes every field starts with "<content>|". A record's
// fields are then "<f>|<rid>", rid = "<kind>|<class>|<campaign>" (the
// campaign empty for the content id's own records), prefixed "<hh>|" for an
// hour record; f is c (the total in decimal, ":", then the serialized
// sketch), r (reasons, "code=n" lines), v (value per currency, "cur=micros"
// lines) and oc (distinct orders). A day's fields in the day hash: g, its
// guard, "<token>/<version>/<positions>/<o>/<hours>" (the token of its last
// write, the number of its writes, the source positions of its records as
// "<partition>:<offset>" pairs joined by ",", "o" when its order hash
// exists, and in hex a mask of the hours that have records); ids, the rids of its day records joined by "," (ids are
// [A-Za-z0-9._:-], so never hold "|", "/" or ","), and ids|<hh> those of
// hour hh's records (a list per hour, so that a new record rewrites a list
// of one hour, not of the whole day); bids, its breakdown values
// "<kind>|<dim>|<value>", each written "<length>:<value>" (values are free
// text). A loader reads g, ids and bids, then the lists of the hours in g's
// mask, then exactly the fields they name. Breakdown fields are "c|<kind>|<dim>|<value>" (total and sketch,
// like a record's c) and bpos, the source positions applied to the
// breakdowns, written with them. An order field is "d|<rid>|<order id>"
// (day records) or "h|<rid>|<order id>" (hour records).
func (s *Store) groupBase(dk DayKey) string {
	return s.prefix + ":c:{" + GroupOf(dk.ContentID) + ":" + time.UnixMilli(dk.DayStart).UTC().Format("20060102") + "}:"
}

// dayBase names dk in messages.
func (s *Store) dayBase(dk DayKey) string { return s.groupBase(dk) + dk.ContentID }

// Groups is the number of content id groups of the day layout: content ids
// of one group share their records' hashes per day, and their days are
// written together. 256 groups keep a flush at a few hundred script calls
// however many content ids changed, and spread a day over 256 cluster slots.
const Groups = 256

// GroupOf returns the group of a content id: FNV-1a (32 bits) of its bytes
// modulo Groups, two hex digits.
func GroupOf(contentID string) string {
	g := groupIndex(contentID)
	const hex = "0123456789abcdef"
	return string([]byte{hex[g>>4], hex[g&15]})
}

func groupIndex(contentID string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(contentID); i++ {
		h ^= uint32(contentID[i])
		h *= 16777619
	}
	return h % Groups
}

// DayRedisKeys returns the hashes holding dk: the group's day record, hour
// record and breakdown hashes, shared with the other content ids of the
// group; dk's fields start with DayField(dk).
func (s *Store) DayRedisKeys(dk DayKey) (day, hour, breakdown string) {
	b := s.groupBase(dk)
	return b + "d", b + "h", b + "b"
}

// ordersKey returns the hash of dk's orders.
func (s *Store) ordersKey(dk DayKey) string { return s.groupBase(dk) + dk.ContentID + ":o" }

// DayField returns the prefix of dk's fields in the group hashes.
func DayField(dk DayKey) string { return dk.ContentID + "|" }

// rid returns the record part of a field name.
func rid(id RecordID) string {
	s := strconv.Itoa(int(id.Kind)) + "|" + strconv.Itoa(int(id.Class)) + "|" + id.Campaign
	if id.Hour != DayRecord {
		s = twoDigits(int(id.Hour)) + "|" + s
	}
	return s
}

func twoDigits(h int) string { return string([]byte{byte('0' + h/10), byte('0' + h%10)}) }

// parseRID parses a rid: "<kind>|<class>|<campaign>", with "<hh>|" first
// for an hour record.
func parseRID(s string) (RecordID, bool) {
	id := RecordID{Hour: DayRecord}
	parts := strings.Split(s, "|")
	if len(parts) == 4 {
		h, err := strconv.Atoi(parts[0])
		if err != nil || len(parts[0]) != 2 || h < 0 || h > 23 {
			return id, false
		}
		id.Hour = int8(h)
		parts = parts[1:]
	}
	if len(parts) != 3 {
		return id, false
	}
	k, err1 := strconv.Atoi(parts[0])
	c, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || c < 0 || c > int(Machine) {
		return id, false
	}
	id.Kind, id.Class, id.Campaign = pixelpb.Kind(k), Class(c), parts[2]
	return id, true
}

// guardFields are the fields of a day that name the others: its guard, its
// breakdown values, and the lists of its day records and of each hour's
// records (one list per hour, so a new record rewrites the list of its hour,
// not of the whole day). LoadDays reads the first three, then the lists of
// the hours the guard says have records.
var guardFields = func() (f [27]string) {
	f[0], f[1], f[2] = fieldGuard, fieldBreakdownIDs, fieldIDs
	for h := range 24 {
		f[3+h] = fieldIDs + "|" + twoDigits(h)
	}
	return f
}()

// idsBit is the bit of Day.newRecords of id's list.
func idsBit(id RecordID) uint32 {
	if id.Hour == DayRecord {
		return 1 << 24
	}
	return 1 << uint(id.Hour)
}

// idsField is the field (without the day's prefix) of id's list.
func idsField(id RecordID) string {
	if id.Hour == DayRecord {
		return guardFields[2]
	}
	return guardFields[3+int(id.Hour)]
}

// guardToken returns the start of d's guard value that a write compares:
// its token and the "/" after it ("" for a day never written).
func (d *Day) guardToken() string {
	t, _, ok := strings.Cut(d.guard, "/")
	if !ok {
		return d.guard
	}
	return t + "/"
}

// guardVersion returns the version part of a guard value ("" if none).
func guardVersion(g string) string {
	_, rest, _ := strings.Cut(g, "/")
	v, _, _ := strings.Cut(rest, "/")
	return v
}

// appendGuard appends the guard value of d written with token.
func appendGuard(b []byte, token string, d *Day, orders bool, hours uint32) []byte {
	b = append(b, token...)
	b = append(b, '/')
	b = strconv.AppendUint(b, d.Version+1, 10)
	b = append(b, '/')
	b = appendPositionsTo(b, d.Pos)
	b = append(b, '/')
	if orders {
		b = append(b, 'o')
	}
	b = append(b, '/')
	return strconv.AppendUint(b, uint64(hours), 16)
}

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
		for _, b := range d.Breakdowns {
			b.Version, b.Pos = d.Version, d.BPos
		}
	}
	return out, nil
}

// parseIDs appends the record ids of lists of rids (fieldIDs values).
func parseIDs(ids []RecordID, lists []any) ([]RecordID, error) {
	for _, val := range lists {
		v, ok := val.(string)
		if !ok {
			continue
		}
		for r := range strings.SplitSeq(v, ",") {
			if r == "" {
				continue
			}
			id, ok := parseRID(r)
			if !ok {
				return nil, fmt.Errorf("%w: record id %q", ErrCorrupt, r)
			}
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// decodeGuard decodes the first fields of a day (guardFields[:3]) and
// returns the day, its day record ids and its breakdown values.
func decodeGuard(vals []any) (*Day, []RecordID, []string, error) {
	d := NewDay()
	if len(vals) != 3 {
		return nil, nil, nil, fmt.Errorf("%w: %d guard values", ErrCorrupt, len(vals))
	}
	if g, ok := vals[0].(string); ok {
		parts := strings.Split(g, "/")
		if len(parts) != 5 {
			return nil, nil, nil, fmt.Errorf("%w: guard %q", ErrCorrupt, g)
		}
		d.ordersStored = strings.Contains(parts[3], "o")
		hours, err := strconv.ParseUint(parts[4], 16, 32)
		if err != nil || hours >= 1<<24 {
			return nil, nil, nil, fmt.Errorf("%w: guard %q", ErrCorrupt, g)
		}
		d.hours = uint32(hours)
		n, err := strconv.ParseUint(parts[1], 10, 64)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%w: guard %q", ErrCorrupt, g)
		}
		d.Version, d.guard = n, g
		if decodePositions(d.Pos, parts[2]) != nil {
			return nil, nil, nil, fmt.Errorf("%w: guard %q", ErrCorrupt, g)
		}
	}
	ids, err := parseIDs(nil, vals[2:])
	if err != nil {
		return nil, nil, nil, err
	}
	var bids []string
	if v, ok := vals[1].(string); ok {
		var err error
		if bids, err = entries(v); err != nil {
			return nil, nil, nil, fmt.Errorf("%w: breakdown values %.40q", ErrCorrupt, v)
		}
	}
	return d, ids, bids, nil
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

// decodeOrders adds a day's orders.
func (d *Day) decodeOrders(orders map[string]string) error {
	for f := range orders {
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
	}
	return nil
}

// appendCount appends the c field of a record: total, ":", sketch.
func appendCount(b []byte, total uint64, sketch []byte) []byte {
	b = strconv.AppendUint(b, total, 10)
	b = append(b, ':')
	return append(b, sketch...)
}

// decodeField sets one field (c, r, v, oc) of r.
func (r *Record) decodeField(kind, v string) error {
	switch kind {
	case fieldCount:
		total, sk, ok := strings.Cut(v, ":")
		n, err := strconv.ParseUint(total, 10, 64)
		if !ok || err != nil {
			return fmt.Errorf("%w: count %.20q", ErrCorrupt, v)
		}
		r.Total = n
		if sk == "" {
			return nil
		}
		if err := r.Sketch.UnmarshalBinary([]byte(sk)); err != nil {
			return fmt.Errorf("%w: sketch: %v", ErrCorrupt, err)
		}
		r.dense = len(sk) > 3 && sk[3] == 0
	case "oc":
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%w: orders %q", ErrCorrupt, v)
		}
		r.NOrders = n
	case "r", "v":
		for line := range strings.SplitSeq(v, "\n") {
			if line == "" {
				continue
			}
			name, num, ok := strings.Cut(line, "=")
			n, err := strconv.ParseInt(num, 10, 64)
			if !ok || err != nil {
				return fmt.Errorf("%w: %s %q", ErrCorrupt, kind, line)
			}
			if kind == "r" {
				if r.Reasons == nil {
					r.Reasons = map[string]uint64{}
				}
				r.Reasons[name] = uint64(n)
			} else {
				if r.Value == nil {
					r.Value = map[string]int64{}
				}
				r.Value[name] = n
			}
		}
	default:
		return fmt.Errorf("%w: field kind %q", ErrCorrupt, kind)
	}
	return nil
}

// decodeBreakdownField sets the count v of breakdown value f,
// "<kind>|<dim>|<value>".
func (d *Day) decodeBreakdownField(f, v string) error {
	parts := strings.SplitN(f, "|", 3)
	if len(parts) != 3 {
		return fmt.Errorf("%w: breakdown field %q", ErrCorrupt, f)
	}
	parts = append([]string{fieldCount}, parts...)
	k, err := strconv.Atoi(parts[1])
	if err != nil {
		return fmt.Errorf("%w: breakdown field %q", ErrCorrupt, f)
	}
	sc := d.Breakdown(pixelpb.Kind(k)).sub(parts[2], parts[3])
	total, sk, ok := strings.Cut(v, ":")
	n, err := strconv.ParseUint(total, 10, 64)
	if !ok || err != nil {
		return fmt.Errorf("%w: breakdown count %s=%.20q", ErrCorrupt, f, v)
	}
	sc.Total = n
	if err := sc.Sketch.UnmarshalBinary([]byte(sk)); err != nil {
		return fmt.Errorf("%w: breakdown sketch %s: %v", ErrCorrupt, f, err)
	}
	return nil
}

// saveDaysScript writes the Days of one content id group and UTC day (one
// hash tag, so one cluster slot), each only if the group's day hash still
// holds, for that day, the guard value its writer loaded or last wrote
// (optimistic concurrency: nobody wrote in between, not even an earlier
// attempt of the same write that a client retry would repeat). Every write
// stores a guard with a token new to it, so a writer whose last write Redis
// lost in a crash, or a stale owner after a rebalance, is refused even where
// the version could have come back to the same number. Refused days are
// left as they were; the others are written.
//
// KEYS[1..3]: the group's day, hour and breakdown hashes; then, in the
// order of the days, the order hash of each day with orders to write.
// ARGV[1] day ttl, ARGV[2] hour ttl, ARGV[3] the number of days n,
// ARGV[4..7] the number of field/value arguments for the day, hour and
// breakdown hashes and the order hashes, ARGV[8] per day "<day>,<hour>,
// <breakdown>,<order>,<flags>;" (its share of those numbers, and flags 1:
// first write of its order hash; read only when a day is refused or orders
// are written); then per day its guard field, the start of the guard value
// it expects, "<token>/" ("" for a day never written), and its new guard
// value; then the day hash arguments of every day, the hour hash
// arguments, the breakdown hash arguments and each day's order arguments.
// Returns one 1 (written) or 0 (refused) per day.
var saveDaysScript = redis.NewScript(`
local n = tonumber(ARGV[3])
local function hset(key, from, to)
  while from <= to do
    local last = math.min(to, from + 3999)
    redis.call('HSET', key, unpack(ARGV, from, last))
    from = last + 1
  end
end
local gf = {}
for i = 1, n do gf[i] = ARGV[6 + 3 * i] end
local cur = redis.call('HMGET', KEYS[1], unpack(gf))
local ok, all = {}, true
local guards = {}
for i = 1, n do
  local e = ARGV[7 + 3 * i]
  if e == '' then
    ok[i] = not cur[i]
  else
    ok[i] = cur[i] and string.find(cur[i], e, 1, true) == 1
  end
  all = all and ok[i]
  if ok[i] then
    guards[#guards + 1] = gf[i]
    guards[#guards + 1] = ARGV[8 + 3 * i]
  end
end
if #guards > 0 then
  redis.call('HSET', KEYS[1], unpack(guards))
end
local tot = {tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])}
local start = {9 + 3 * n}
for s = 2, 4 do start[s] = start[s - 1] + tot[s - 1] end
local wrote = {#guards > 0, false, false}
if all then
  for s = 1, 3 do
    hset(KEYS[s], start[s], start[s + 1] - 1)
    wrote[s] = wrote[s] or tot[s] > 0
  end
end
if not all or tot[4] > 0 then
  local cnt = {}
  for c in string.gmatch(ARGV[8], '%d+') do cnt[#cnt + 1] = tonumber(c) end
  local at = {start[1], start[2], start[3], start[4]}
  local k = 4
  for i = 1, n do
    local b = 5 * (i - 1)
    if ok[i] and not all then
      for s = 1, 3 do
        hset(KEYS[s], at[s], at[s] + cnt[b + s] - 1)
        wrote[s] = wrote[s] or cnt[b + s] > 0
      end
    end
    if cnt[b + 4] > 0 then
      if ok[i] then
        hset(KEYS[k], at[4], at[4] + cnt[b + 4] - 1)
        if cnt[b + 5] % 2 == 1 then
          redis.call('EXPIRE', KEYS[k], ARGV[1])
        end
      end
      k = k + 1
    end
    for s = 1, 4 do at[s] = at[s] + cnt[b + s] end
  end
end
-- Retention runs from a hash's first write: the days' writes end within
-- the late horizon, so this differs from the last write by days at most.
if wrote[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[1], 'NX')
end
if wrote[2] then
  redis.call('EXPIRE', KEYS[2], ARGV[2], 'NX')
end
if wrote[3] then
  redis.call('EXPIRE', KEYS[3], ARGV[1], 'NX')
end
for i = 1, n do ok[i] = ok[i] and 1 or 0 end
return ok
`)

// maxDaysPerCall bounds the days one script call writes, and so the time
// Redis spends in it.
const maxDaysPerCall = 64

// DayWrite is one Day to save.
type DayWrite struct {
	Key DayKey
	Day *Day
	// Details adds the changed breakdowns and their positions.
	Details bool
}

// argBuf is reused across saves: sketches are appended to one buffer and
// the arguments slice into it, so a flush does not allocate per sketch.
type argBuf struct {
	bytes []byte
	args  []any
}

// argBufs keeps a few buffers between flushes (a sync.Pool would drop them
// at every GC, and a flush's buffer is megabytes).
var argBufs = make(chan *argBuf, 4)

func getArgBuf() *argBuf {
	select {
	case b := <-argBufs:
		return b
	default:
		return &argBuf{}
	}
}

func putArgBuf(b *argBuf) {
	select {
	case argBufs <- b:
	default:
	}
}

var sketchSeed = maphash.MakeSeed()

// SaveDays writes days in one pipelined round trip: one script call per
// content id group and day (at most maxDaysPerCall days each) with, per day,
// the records changed since the last write (and, with Details, the changed
// breakdowns); before that, in a round trip of its own, the day index of
// days written for the first time (version 0) and the campaign index of
// campaigns new to a day (see index.go). written[i] is false when Redis no
// longer holds the token writes[i] was loaded at (another owner wrote, or
// Redis lost writes in a crash): the caller's copy is stale and must be
// dropped. A written day's version moves on and its records are clean.
func (s *Store) SaveDays(ctx context.Context, writes []DayWrite) (written []bool, err error) {
	if len(writes) == 0 {
		return nil, nil
	}
	// New days and campaigns go into their indexes first, in a round trip
	// of their own (index.go): data without an index entry must never exist.
	if err := s.indexNew(ctx, writes); err != nil {
		return nil, err
	}
	// Make sure the script is cached so the pipeline can use EVALSHA.
	if err := saveDaysScript.Load(ctx, s.rdb).Err(); err != nil {
		return nil, fmt.Errorf("load save script: %w", err)
	}
	// Calls: the writes of one group and day, in the order of writes.
	type callKey struct {
		group uint32
		day   int64
	}
	byCall := map[callKey][]int{}
	var order []callKey
	for i, w := range writes {
		ck := callKey{groupIndex(w.Key.ContentID), w.Key.DayStart}
		if byCall[ck] == nil {
			order = append(order, ck)
		}
		byCall[ck] = append(byCall[ck], i)
	}
	token := newToken()
	buf := getArgBuf()
	defer putArgBuf(buf)
	buf.bytes, buf.args = buf.bytes[:0], buf.args[:0]
	type call struct {
		cmd  *redis.Cmd
		days []int
	}
	var calls []call
	var sec [4][]any  // per call: day, hour, breakdown and order arguments
	var counts []byte // per call: each day's share of sec, ARGV[8]
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, ck := range order {
			idx := byCall[ck]
			for len(idx) > 0 {
				n := min(len(idx), maxDaysPerCall)
				dh, hh, bh := s.DayRedisKeys(writes[idx[0]].Key)
				keys := []string{dh, hh, bh}
				for j := range sec {
					sec[j] = sec[j][:0]
				}
				start := len(buf.args)
				buf.args = append(buf.args, s.dayTTL, s.hourTTL, n, 0, 0, 0, 0, "")
				counts = counts[:0]
				for _, i := range idx[:n] {
					w := writes[i]
					var cnt [4]int
					for j := range sec {
						cnt[j] = len(sec[j])
					}
					flags := s.dayArgs(buf, &sec, w, token)
					for j := range sec {
						cnt[j] = len(sec[j]) - cnt[j]
						counts = strconv.AppendInt(counts, int64(cnt[j]), 10)
						counts = append(counts, ',')
					}
					counts = append(strconv.AppendInt(counts, int64(flags), 10), ';')
					buf.args = append(buf.args, DayField(w.Key)+fieldGuard, w.Day.guardToken(), w.Day.pendingGuard)
					if cnt[3] > 0 {
						keys = append(keys, s.ordersKey(w.Key))
					}
				}
				for j := range sec {
					buf.args[start+3+j] = len(sec[j])
					buf.args = append(buf.args, sec[j]...)
				}
				buf.args[start+7] = string(counts)
				args := buf.args[start:len(buf.args):len(buf.args)]
				calls = append(calls, call{saveDaysScript.EvalSha(ctx, p, keys, args...), idx[:n]})
				idx = idx[n:]
			}
		}
		return nil
	})
	clear(buf.args[:cap(buf.args)])
	for j := range sec {
		clear(sec[j][:cap(sec[j])])
	}
	if err != nil {
		return nil, fmt.Errorf("save %d count days: %w", len(writes), err)
	}
	written = make([]bool, len(writes))
	for _, c := range calls {
		res, err := c.cmd.Int64Slice()
		if err != nil || len(res) != len(c.days) {
			return nil, fmt.Errorf("save %s and %d more days: %d results, %w", s.dayBase(writes[c.days[0]].Key), len(c.days)-1, len(res), err)
		}
		for j, i := range c.days {
			written[i] = res[j] == 1
			if written[i] {
				writes[i].Day.saved(writes[i].Details)
			}
		}
	}
	return written, nil
}

// tokens makes write tokens unique within the process; newToken adds a
// random part, unique across processes and restarts.
var tokens atomic.Uint64

func newToken() string {
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		panic("BUG: crypto/rand: " + err.Error())
	}
	return strconv.FormatUint(binary.LittleEndian.Uint64(b[:]), 36) + "." + strconv.FormatUint(tokens.Add(1), 36)
}

// dayArgs appends the arguments of one day of a saveDaysScript call to the
// day, hour, order and breakdown sections of sec (their bytes into buf) and
// returns its ttl flags.
func (s *Store) dayArgs(buf *argBuf, sec *[4][]any, w DayWrite, token string) (flags int) {
	d := w.Day
	f := DayField(w.Key)
	var hours uint32 // the hours with records, in the guard
	defer func() {
		n0 := len(buf.bytes)
		buf.bytes = appendGuard(buf.bytes, token, d, d.ordersStored || flags&1 != 0, hours)
		d.pendingGuard = string(buf.bytes[n0:])
		buf.bytes = buf.bytes[:n0]
	}()
	if d.newRecords != 0 {
		lists := map[uint32][]string{}
		for id, r := range d.Records {
			if b := idsBit(id); d.newRecords&b != 0 {
				if r.rid == "" {
					r.rid = rid(id)
				}
				lists[b] = append(lists[b], r.rid)
			}
		}
		for _, ids := range lists {
			slices.Sort(ids)
			id, _ := parseRID(ids[0])
			sec[0] = append(sec[0], f+idsField(id), strings.Join(ids, ","))
		}
	}
	for id, r := range d.Records {
		if id.Hour != DayRecord {
			hours |= 1 << uint(id.Hour)
		}
		if !r.dirty {
			continue
		}
		h := 0
		if id.Hour != DayRecord {
			h = 1
		}
		sec[h] = s.recordArgs(buf, sec[h], f, r, id)
		if len(r.newOrders) > 0 {
			of := "d|"
			if h == 1 {
				of = "h|"
			}
			for _, o := range r.newOrders {
				sec[3] = append(sec[3], of+r.rid+"|"+o, 1)
			}
			if !d.ordersStored {
				flags |= 1
			}
		}
	}
	if w.Details {
		newValues := false
		for _, b := range d.Breakdowns {
			newValues = newValues || b.newValues
		}
		var bids []byte // the day's breakdown values, when one is new
		n0 := len(sec[2])
		for kind, b := range d.Breakdowns {
			ks := strconv.Itoa(int(kind))
			for dim, vals := range b.Dims {
				for value, sc := range vals {
					bf := ks + "|" + dim + "|" + value
					if newValues {
						bids = appendEntry(bids, bf)
					}
					if !sc.dirty {
						continue
					}
					n1 := len(buf.bytes)
					buf.bytes = append(strconv.AppendUint(buf.bytes, sc.Total, 10), ':')
					appendSketch(buf, sc.Sketch, &sc.dense)
					sec[2] = append(sec[2], f+fieldCount+"|"+bf, buf.bytes[n1:len(buf.bytes):len(buf.bytes)])
				}
			}
		}
		if len(sec[2]) > n0 {
			sec[2] = append(sec[2], f+fieldBreakdownPositions, appendPositions(buf, d.BPos))
		}
		if newValues {
			sec[0] = append(sec[0], f+fieldBreakdownIDs, string(bids))
		}
	}
	return flags
}

// appendEntry appends e to a list of entries, each "<length>:<bytes>" (so
// entries may hold any byte).
func appendEntry(b []byte, e string) []byte {
	b = strconv.AppendInt(b, int64(len(e)), 10)
	b = append(b, ':')
	return append(b, e...)
}

// entries splits a list made by appendEntry.
func entries(v string) ([]string, error) {
	var out []string
	for v != "" {
		l, rest, ok := strings.Cut(v, ":")
		n, err := strconv.Atoi(l)
		if !ok || err != nil || n < 0 || n > len(rest) {
			return nil, errors.New("bad entry list")
		}
		out = append(out, rest[:n])
		v = rest[n:]
	}
	return out, nil
}

// appendPositions appends ps encoded (appendPositionsTo) to buf and returns
// those bytes.
func appendPositions(buf *argBuf, ps Positions) []byte {
	n := len(buf.bytes)
	buf.bytes = appendPositionsTo(buf.bytes, ps)
	return buf.bytes[n:len(buf.bytes):len(buf.bytes)]
}

// appendPositionsTo appends ps encoded as "<partition>:<offset>" pairs
// joined by "," (partitions in increasing order) to b.
func appendPositionsTo(b []byte, ps Positions) []byte {
	parts := make([]int32, 0, len(ps))
	for p := range ps {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for i, p := range parts {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(p), 10)
		b = append(b, ':')
		b = strconv.AppendInt(b, ps[p], 10)
	}
	return b
}

// decodePositions adds the positions encoded in v (appendPositionsTo) to ps.
func decodePositions(ps Positions, v string) error {
	for pair := range strings.SplitSeq(v, ",") {
		if pair == "" {
			continue
		}
		ptxt, otxt, ok := strings.Cut(pair, ":")
		p, err1 := strconv.ParseInt(ptxt, 10, 32)
		o, err2 := strconv.ParseInt(otxt, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return errors.New("bad position")
		}
		ps[int32(p)] = o
	}
	return nil
}

// appendSketch appends sk serialized to buf and returns those bytes. A
// sparse sketch (dense false) is compacted first: the sketch keeps its
// newest entries in a plain set of 4 bytes each, which compaction moves into
// its delta-encoded list of one or two bytes each, so most small sketches
// are written in half the bytes or less. dense reports the form written.
func appendSketch(buf *argBuf, sk *hyperloglog.Sketch, dense *bool) []byte {
	if !*dense {
		sk.Estimate() // compacts a sparse sketch (and may make it dense)
	}
	n := len(buf.bytes)
	b, err := sk.AppendBinary(buf.bytes)
	if err != nil {
		panic("BUG: marshal sketch: " + err.Error())
	}
	// When append moved to a larger array, the arguments built so far keep
	// the old one, whose bytes are never written again.
	buf.bytes = b
	out := b[n:len(b):len(b)]
	*dense = len(out) > 3 && out[3] == 0
	return out
}

// recordArgs appends the changed fields of one record, named with the
// day's field prefix f: its count (total and sketch) when either changed,
// reasons, values and its order count.
func (s *Store) recordArgs(buf *argBuf, args []any, f string, r *Record, id RecordID) []any {
	if r.rid == "" {
		r.rid = rid(id)
	}
	n0 := len(buf.bytes)
	buf.bytes = append(strconv.AppendUint(buf.bytes, r.Total, 10), ':')
	n1 := len(buf.bytes)
	appendSketch(buf, r.Sketch, &r.dense)
	sum := maphash.Bytes(sketchSeed, buf.bytes[n1:])
	if sum != r.savedSketch || r.Total != r.savedTotal {
		args = append(args, f+fieldCount+"|"+r.rid, buf.bytes[n0:len(buf.bytes):len(buf.bytes)])
		r.pendingSketch = sum
	} else {
		buf.bytes = buf.bytes[:n0]
	}
	if len(r.Reasons) > 0 {
		args = append(args, f+"r|"+r.rid, encodeCounts(r.Reasons))
	}
	if len(r.Value) > 0 {
		args = append(args, f+"v|"+r.rid, encodeCounts(r.Value))
	}
	if len(r.newOrders) > 0 {
		args = append(args, f+"oc|"+r.rid, r.NOrders)
	}
	return args
}

func encodeCounts[N uint64 | int64](m map[string]N) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.FormatInt(int64(m[k]), 10))
		b.WriteByte('\n')
	}
	return b.String()
}

// saved marks d written.
func (d *Day) saved(details bool) {
	d.Version++
	d.guard = d.pendingGuard
	d.newRecords = 0
	for _, r := range d.Records {
		r.Version = d.Version
		if r.dirty {
			r.dirty = false
			r.savedTotal = r.Total
			r.savedSketch = r.pendingSketch
			if len(r.newOrders) > 0 {
				d.ordersStored = true
			}
			r.newOrders = r.newOrders[:0]
		}
	}
	clear(d.campaigns)
	if details {
		for _, b := range d.Breakdowns {
			b.Version = d.Version
			b.newValues = false
			if b.changed {
				b.changed = false
				for _, vals := range b.Dims {
					for _, sc := range vals {
						sc.dirty = false
					}
				}
			}
		}
	}
}
