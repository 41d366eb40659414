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

// Day is the stored state of one DayKey. One version and one set of
// positions guard all of it: a write of a Day (one script call, see
// SaveDays) carries every record of the day that changed since the last
// write, and at detail flushes its breakdowns.
type Day struct {
	// Version counts the writes of the day. Readers compare it (a week
	// rollup names the versions of its days).
	Version uint64
	// token is the write token stored by the last write the holder loaded
	// or made; a write succeeds only over it (see saveDaysScript).
	token string
	// Pos holds the last source position applied to the records, BPos the
	// last applied to the breakdowns (written at detail flushes only).
	Pos, BPos Positions
	// Records holds the day's hour and day records.
	Records map[RecordID]*Record
	// Breakdowns holds the human breakdowns per kind.
	Breakdowns map[pixelpb.Kind]*Breakdown
	// campaigns lists campaigns whose index entry must still be written.
	campaigns map[string]bool
	// hoursStored and breakdownsStored: the hour and breakdown hashes
	// exist (their retention is set at their first write).
	hoursStored, breakdownsStored bool
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
		d.Records[id] = r
		if id.Campaign != "" {
			if d.campaigns == nil {
				d.campaigns = map[string]bool{}
			}
			d.campaigns[id.Campaign] = true
		}
	}
	return r
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

// Layout: three hashes per content id and UTC day. Their Redis Cluster hash
// tag (the braces) names the content id's group (GroupOf, computed from the
// content id alone) and the day, so one script call can write the days of
// every content id of a group, and all of it lives in one cluster slot:
//
//	<prefix>:c:{<group>:<yyyymmdd>}:<content>:d  day records, and the guard: ver, wt, pos, bpos
//	<prefix>:c:{<group>:<yyyymmdd>}:<content>:h  hour records (kept HourRetention)
//	<prefix>:c:{<group>:<yyyymmdd>}:<content>:b  breakdowns
//
// A record's fields are "<f>|<rid>", rid = "<kind>|<class>|<campaign>" (the
// campaign empty for the content id's own records), prefixed "<hh>|" in the
// hour hash; f is n (total), h (sketch), r (reasons, "code=n" lines), v
// (value per currency, "cur=micros" lines), oc (distinct orders), and
// "o|<rid>|<order id>" marks one order. Breakdown fields are
// "n|<kind>|<dim>|<value>" and "h|<kind>|<dim>|<value>". Ids never hold "|".
// The guard fields: ver counts writes, wt is the last write's token, pos
// and bpos the source positions of the records and of the breakdowns as
// "<partition>:<offset>" pairs joined by ",".
func (s *Store) dayBase(dk DayKey) string {
	return s.prefix + ":c:{" + GroupOf(dk.ContentID) + ":" + time.UnixMilli(dk.DayStart).UTC().Format("20060102") + "}:" + dk.ContentID + ":"
}

// Groups is the number of content id groups of the day layout: content ids
// of one group share a hash tag per day, and their days are written
// together. 256 groups keep a flush at a few hundred script calls however
// many content ids changed, and spread a day over 256 cluster slots.
const Groups = 256

// GroupOf returns the group of a content id: FNV-1a of its bytes modulo
// Groups, two hex digits.
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

// DayRedisKeys returns the day, hour and breakdown hashes of dk.
func (s *Store) DayRedisKeys(dk DayKey) (day, hour, breakdown string) {
	b := s.dayBase(dk)
	return b + "d", b + "h", b + "b"
}

// rid returns the record part of a field name.
func rid(id RecordID) string {
	s := strconv.Itoa(int(id.Kind)) + "|" + strconv.Itoa(int(id.Class)) + "|" + id.Campaign
	if id.Hour != DayRecord {
		s = twoDigits(int(id.Hour)) + "|" + s
	}
	return s
}

func twoDigits(h int) string { return string([]byte{byte('0' + h/10), byte('0' + h%10)}) }

// parseField splits a record field name of the day (hour=false) or hour hash.
func parseField(f string, hour bool) (kind string, id RecordID, order string, ok bool) {
	parts := strings.Split(f, "|")
	id.Hour = DayRecord
	if hour {
		if len(parts) < 2 || len(parts[1]) != 2 {
			return "", id, "", false
		}
		h, err := strconv.Atoi(parts[1])
		if err != nil || h < 0 || h > 23 {
			return "", id, "", false
		}
		id.Hour = int8(h)
		parts = append(parts[:1], parts[2:]...)
	}
	if len(parts) < 4 {
		return "", id, "", false
	}
	k, err1 := strconv.Atoi(parts[1])
	c, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || c < 0 || c > int(Machine) {
		return "", id, "", false
	}
	id.Kind, id.Class, id.Campaign = pixelpb.Kind(k), Class(c), parts[3]
	switch {
	case parts[0] == "o" && len(parts) == 5:
		return "o", id, parts[4], true
	case len(parts) == 4:
		return parts[0], id, "", true
	}
	return "", id, "", false
}

// LoadDays reads whole days in one round trip (three HGETALLs each). A day
// with nothing stored gives an empty Day.
func (s *Store) LoadDays(ctx context.Context, keys []DayKey) ([]*Day, error) {
	cmds := make([]*redis.MapStringStringCmd, 3*len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			d, h, b := s.DayRedisKeys(k)
			cmds[3*i] = p.HGetAll(ctx, d)
			cmds[3*i+1] = p.HGetAll(ctx, h)
			cmds[3*i+2] = p.HGetAll(ctx, b)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("load %d count days: %w", len(keys), err)
	}
	out := make([]*Day, len(keys))
	for i, k := range keys {
		d, err := decodeDay(cmds[3*i].Val(), cmds[3*i+1].Val(), cmds[3*i+2].Val())
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", s.dayBase(k), err)
		}
		out[i] = d
	}
	return out, nil
}

func decodeDay(day, hour, bd map[string]string) (*Day, error) {
	d := NewDay()
	for f, v := range day {
		switch f {
		case fieldVersion:
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: version %q", ErrCorrupt, v)
			}
			d.Version = n
			continue
		case fieldToken:
			d.token = v
			continue
		case fieldPositions, fieldBreakdownPositions:
			ps := d.Pos
			if f == fieldBreakdownPositions {
				ps = d.BPos
			}
			if err := decodePositions(ps, v); err != nil {
				return nil, fmt.Errorf("%w: %s %q", ErrCorrupt, f, v)
			}
			continue
		}
		if err := d.decodeField(f, v, false); err != nil {
			return nil, err
		}
	}
	d.hoursStored, d.breakdownsStored = len(hour) > 0, len(bd) > 0
	for f, v := range hour {
		if err := d.decodeField(f, v, true); err != nil {
			return nil, err
		}
	}
	for f, v := range bd {
		if err := d.decodeBreakdownField(f, v); err != nil {
			return nil, err
		}
	}
	for _, r := range d.Records {
		r.Version, r.savedTotal = d.Version, r.Total
	}
	for _, b := range d.Breakdowns {
		b.Version, b.Pos = d.Version, d.BPos
	}
	clear(d.campaigns) // loaded campaigns are indexed already
	return d, nil
}

func (d *Day) decodeField(f, v string, hour bool) error {
	kind, id, order, ok := parseField(f, hour)
	if !ok {
		return fmt.Errorf("%w: field %q", ErrCorrupt, f)
	}
	r := d.Record(id)
	if kind == "o" {
		if r.Orders == nil {
			r.Orders = map[string]struct{}{}
		}
		r.Orders[order] = struct{}{}
		return nil
	}
	return r.decodeField(kind, v)
}

// decodeField sets one field (n, h, r, v, oc) of r.
func (r *Record) decodeField(kind, v string) error {
	switch kind {
	case "n":
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%w: total %q", ErrCorrupt, v)
		}
		r.Total = n
	case "h":
		if v == "" {
			return nil
		}
		if err := r.Sketch.UnmarshalBinary([]byte(v)); err != nil {
			return fmt.Errorf("%w: sketch: %v", ErrCorrupt, err)
		}
		r.dense = len(v) > 3 && v[3] == 0
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

func (d *Day) decodeBreakdownField(f, v string) error {
	parts := strings.SplitN(f, "|", 4)
	if len(parts) != 4 || (parts[0] != "n" && parts[0] != "h") {
		return fmt.Errorf("%w: breakdown field %q", ErrCorrupt, f)
	}
	k, err := strconv.Atoi(parts[1])
	if err != nil {
		return fmt.Errorf("%w: breakdown field %q", ErrCorrupt, f)
	}
	sc := d.Breakdown(pixelpb.Kind(k)).sub(parts[2], parts[3])
	if parts[0] == "n" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%w: breakdown total %s=%q", ErrCorrupt, f, v)
		}
		sc.Total = n
		return nil
	}
	if err := sc.Sketch.UnmarshalBinary([]byte(v)); err != nil {
		return fmt.Errorf("%w: breakdown sketch %s: %v", ErrCorrupt, f, err)
	}
	return nil
}

// saveDaysScript writes the Days of one content id group and UTC day (one
// hash tag, so one cluster slot), each only if its day hash still holds the
// write token its writer loaded or last wrote (optimistic concurrency: nobody
// wrote in between, not even an earlier attempt of the same write that a
// client retry would repeat). Every write stores a token new to it, so a
// writer whose last write Redis lost in a crash, or a stale owner after a
// rebalance, is refused even where a version counter could have come back to
// the same number. Refused days are left as they were; the others are written.
//
// KEYS: per day its day and hour hashes, and in a details call (ARGV[4] =
// 3) its breakdown hash. ARGV[1] day ttl, ARGV[2] hour ttl, ARGV[3] the new
// token, ARGV[4] the keys per day (2 or 3); then per day: the expected
// token ("" for a day never written), the new version, the positions, the
// ttl flags (1: first write of the hour hash, 2: of the breakdown hash, 3:
// both), the number of field/value arguments of records for the day and the
// hour hash, and in a details call the breakdown positions and the number
// of breakdown field/value arguments; then those fields. Returns one 1
// (written) or 0 (refused) per day. The new version is the writer's: a
// matching token means Redis holds the version the writer loaded or wrote.
var saveDaysScript = redis.NewScript(`
local res = {}
local tok, stride = ARGV[3], tonumber(ARGV[4])
local a = 5
for i = 1, #KEYS, stride do
  local fl, nd, nh = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  local nb, f = 0, a + 6
  if stride == 3 then
    nb, f = tonumber(ARGV[a + 7]), a + 8
  end
  if (redis.call('HGET', KEYS[i], 'wt') or '') ~= ARGV[a] then
    res[#res + 1] = 0
  else
    if stride == 3 then
      redis.call('HSET', KEYS[i], 'wt', tok, 'ver', ARGV[a + 1], 'pos', ARGV[a + 2], 'bpos', ARGV[a + 6], unpack(ARGV, f, f + nd - 1))
    else
      redis.call('HSET', KEYS[i], 'wt', tok, 'ver', ARGV[a + 1], 'pos', ARGV[a + 2], unpack(ARGV, f, f + nd - 1))
    end
    if nh > 0 then
      redis.call('HSET', KEYS[i + 1], unpack(ARGV, f + nd, f + nd + nh - 1))
    end
    if nb > 0 then
      redis.call('HSET', KEYS[i + 2], unpack(ARGV, f + nd + nh, f + nd + nh + nb - 1))
    end
    -- Retention runs from a hash's first write: a day's writes end within
    -- the late horizon, so this differs from the last write by days at
    -- most, and saves an EXPIRE on every write.
    if ARGV[a] == '' then
      redis.call('EXPIRE', KEYS[i], ARGV[1])
    end
    if fl % 2 == 1 then
      redis.call('EXPIRE', KEYS[i + 1], ARGV[2])
    end
    if fl >= 2 then
      redis.call('EXPIRE', KEYS[i + 2], ARGV[1])
    end
    res[#res + 1] = 1
  end
  a = f + nd + nh + nb
end
return res
`)

// maxDaysPerCall bounds the days one script call writes, and so the time
// Redis spends in it (tens of microseconds per day).
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
	// Calls: writes of one group and day, in order of their index.
	type callKey struct {
		group   uint32
		day     int64
		details bool
	}
	byCall := map[callKey][]int{}
	var order []callKey
	for i, w := range writes {
		ck := callKey{groupIndex(w.Key.ContentID), w.Key.DayStart, w.Details}
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
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, ck := range order {
			idx := byCall[ck]
			for len(idx) > 0 {
				n := min(len(idx), maxDaysPerCall)
				stride := 2
				if writes[idx[0]].Details {
					stride = 3
				}
				keys := make([]string, 0, stride*n)
				start := len(buf.args)
				buf.args = append(buf.args, s.dayTTL, s.hourTTL, token, stride)
				for _, i := range idx[:n] {
					d, h, b := s.DayRedisKeys(writes[i].Key)
					keys = append(keys, d, h)
					if stride == 3 {
						keys = append(keys, b)
					}
					s.dayArgs(buf, writes[i])
				}
				args := buf.args[start:len(buf.args):len(buf.args)]
				calls = append(calls, call{saveDaysScript.EvalSha(ctx, p, keys, args...), idx[:n]})
				idx = idx[n:]
			}
		}
		return nil
	})
	clear(buf.args[:cap(buf.args)])
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
				writes[i].Day.saved(writes[i].Details, token)
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

// dayArgs appends the arguments of one day of a saveDaysScript call to buf.
func (s *Store) dayArgs(buf *argBuf, w DayWrite) {
	d := w.Day
	start := len(buf.args)
	buf.args = append(buf.args, d.token, d.Version+1, appendPositions(buf, d.Pos), 0, 0, 0)
	if w.Details {
		buf.args = append(buf.args, appendPositions(buf, d.BPos), 0)
	}
	counts := [2]int{}
	hours := false
	for pass := range 2 { // day fields first, then hour fields
		n0 := len(buf.args)
		for id, r := range d.Records {
			if !r.dirty || (id.Hour == DayRecord) != (pass == 0) {
				continue
			}
			buf.args = s.recordArgs(buf, buf.args, id, r)
			hours = hours || pass == 1
		}
		counts[pass] = len(buf.args) - n0
	}
	flags := 0
	if hours && !d.hoursStored {
		flags |= 1
	}
	if w.Details {
		n0 := len(buf.args)
		for kind, b := range d.Breakdowns {
			if !b.changed {
				continue
			}
			ks := strconv.Itoa(int(kind))
			for dim, vals := range b.Dims {
				for value, sc := range vals {
					if !sc.dirty {
						continue
					}
					f := ks + "|" + dim + "|" + value
					buf.args = append(buf.args, "n|"+f, sc.Total, "h|"+f, appendSketch(buf, sc.Sketch))
				}
			}
		}
		nb := len(buf.args) - n0
		if nb > 0 && !d.breakdownsStored {
			flags |= 2
		}
		buf.args[start+7] = nb
	}
	buf.args[start+3], buf.args[start+4], buf.args[start+5] = flags, counts[0], counts[1]
}

// appendPositions appends ps encoded as "<partition>:<offset>" pairs joined
// by "," (partitions in increasing order) to buf and returns those bytes.
func appendPositions(buf *argBuf, ps Positions) []byte {
	parts := make([]int32, 0, len(ps))
	for p := range ps {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	n := len(buf.bytes)
	b := buf.bytes
	for i, p := range parts {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(p), 10)
		b = append(b, ':')
		b = strconv.AppendInt(b, ps[p], 10)
	}
	buf.bytes = b
	return b[n:len(b):len(b)]
}

// decodePositions adds the positions encoded in v (appendPositions) to ps.
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

func appendSketch(buf *argBuf, sk interface {
	AppendBinary([]byte) ([]byte, error)
}) []byte {
	n := len(buf.bytes)
	b, err := sk.AppendBinary(buf.bytes)
	if err != nil {
		panic("BUG: marshal sketch: " + err.Error())
	}
	// When append moved to a larger array, the arguments built so far keep
	// the old one, whose bytes are never written again.
	buf.bytes = b
	return b[n:len(b):len(b)]
}

// recordArgs appends the changed fields of one record: its total, its
// sketch when its bytes changed, reasons, values and new orders.
func (s *Store) recordArgs(buf *argBuf, args []any, id RecordID, r *Record) []any {
	if r.rid == "" {
		r.rid = rid(id)
	}
	if r.Total != r.savedTotal {
		args = append(args, "n|"+r.rid, r.Total)
	}
	sk := appendSketch(buf, r.Sketch)
	if sum := maphash.Bytes(sketchSeed, sk); sum != r.savedSketch {
		args = append(args, "h|"+r.rid, sk)
		r.pendingSketch = sum
	} else {
		buf.bytes = buf.bytes[:len(buf.bytes)-len(sk)]
	}
	if len(r.Reasons) > 0 {
		args = append(args, "r|"+r.rid, encodeCounts(r.Reasons))
	}
	if len(r.Value) > 0 {
		args = append(args, "v|"+r.rid, encodeCounts(r.Value))
	}
	if len(r.newOrders) > 0 {
		args = append(args, "oc|"+r.rid, r.NOrders)
		for _, o := range r.newOrders {
			args = append(args, "o|"+r.rid+"|"+o, 1)
		}
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

// saved marks d written with token.
func (d *Day) saved(details bool, token string) {
	d.Version++
	d.token = token
	for id, r := range d.Records {
		if r.dirty && id.Hour != DayRecord {
			d.hoursStored = true
			break
		}
	}
	for _, r := range d.Records {
		r.Version = d.Version
		if r.dirty {
			r.dirty = false
			r.savedTotal = r.Total
			r.savedSketch = r.pendingSketch
			r.newOrders = r.newOrders[:0]
		}
	}
	clear(d.campaigns)
	if details {
		for _, b := range d.Breakdowns {
			b.Version = d.Version
			if b.changed {
				d.breakdownsStored = true
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
