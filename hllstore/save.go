package hllstore

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/axiomhq/hyperloglog"
	"github.com/redis/go-redis/v9"
)

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
// order of the days, the order hash of each day with orders to write; then,
// in the order of the days, the recipient bucket and link hashes each day
// writes (recipient.go).
// ARGV[1] day ttl, ARGV[2] hour ttl, ARGV[3] the number of days n,
// ARGV[4..7] the number of field/value arguments for the day, hour and
// breakdown hashes and the order hashes, ARGV[8] per day "<day>,<hour>,
// <breakdown>,<order>,<flags>,<rkeys>,<rargs>;" (its share of those
// numbers, flags 1: first write of its order hash, then the number of
// recipient keys it writes and of their arguments; read only when a day is
// refused, or orders or recipients are written); then per day its guard
// field, the start of the guard value it expects, "<token>/" ("" for a day
// never written), and its new guard value; then the day hash arguments of
// every day, the hour hash arguments, the breakdown hash arguments and each
// day's order arguments; then the number of recipient arguments, and each
// day's recipient arguments (per key: "m" for a bucket of recipients or "l"
// for a links or clickers hash, the number of field/value pairs, the key's
// retention in seconds, the pairs).
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
-- merge adds the activity change d to a recipient's stored activity (see
-- recipient.go): token by token, f and F keep the smaller, l and L the
-- larger, x the first, i the latest, the others add.
local function merge(key, field, d)
  local old = redis.call('HGET', key, field)
  if not old then
    redis.call('HSET', key, field, d)
    return
  end
  local t, names = {}, {}
  local function put(tok, new)
    local tag = string.sub(tok, 1, 1)
    local name, val = tag, string.sub(tok, 2)
    if tag == 'c' or tag == 'x' then
      local eq = string.find(tok, '=', 2, true)
      name, val = string.sub(tok, 1, eq - 1), string.sub(tok, eq + 1)
    end
    local cur = t[name]
    if cur == nil then
      t[name] = val
      names[#names + 1] = name
    elseif new then
      if tag == 'i' then
        t[name] = val
      elseif tag == 'f' or tag == 'F' then
        if tonumber(val) < tonumber(cur) then t[name] = val end
      elseif tag == 'l' or tag == 'L' then
        if tonumber(val) > tonumber(cur) then t[name] = val end
      elseif tag ~= 'x' then
        t[name] = string.format('%d', tonumber(cur) + tonumber(val))
      end
    end
  end
  for tok in string.gmatch(old, '%S+') do put(tok, false) end
  for tok in string.gmatch(d, '%S+') do put(tok, true) end
  for j, name in ipairs(names) do
    local tag = string.sub(name, 1, 1)
    if tag == 'c' or tag == 'x' then
      names[j] = name .. '=' .. t[name]
    else
      names[j] = name .. t[name]
    end
  end
  redis.call('HSET', key, field, table.concat(names, ' '))
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
local rstart = start[4] + tot[4]
local rtot = tonumber(ARGV[rstart])
if not all or tot[4] > 0 or rtot > 0 then
  local cnt = {}
  for c in string.gmatch(ARGV[8], '%d+') do cnt[#cnt + 1] = tonumber(c) end
  local at = {start[1], start[2], start[3], start[4], rstart + 1}
  local k = 4
  local rk = 4
  for i = 1, n do
    if cnt[7 * (i - 1) + 4] > 0 then rk = rk + 1 end
  end
  for i = 1, n do
    local b = 7 * (i - 1)
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
    -- Recipient activity: per key its type (m: a bucket of recipients, l:
    -- a links or clickers hash), its number of field/value pairs, its
    -- retention, the pairs.
    if cnt[b + 6] > 0 then
      if ok[i] then
        local a = at[5]
        for j = 0, cnt[b + 6] - 1 do
          local key = KEYS[rk + j]
          local typ, m, ttl = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
          a = a + 3
          for q = a, a + 2 * m - 1, 2 do
            if typ == 'm' then
              merge(key, ARGV[q], ARGV[q + 1])
            else
              local c = string.sub(ARGV[q], 1, 1)
              if c == 'n' or c == 'm' then
                redis.call('HINCRBY', key, ARGV[q], ARGV[q + 1])
              else
                redis.call('HSET', key, ARGV[q], ARGV[q + 1])
              end
            end
          end
          a = a + 2 * m
          redis.call('EXPIRE', key, ttl, 'NX')
        end
      end
      rk = rk + cnt[b + 6]
    end
    for s = 1, 4 do at[s] = at[s] + cnt[b + s] end
    at[5] = at[5] + cnt[b + 7]
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

// SaveDays writes days in one pipelined round trip (two when a server does
// not have the script cached yet): one script call per content id group and
// day (at most maxDaysPerCall days each) with, per day, the records changed
// since the last write (and, with Details, the changed breakdowns); before
// that, in a round trip of its own, the day index of days written for the
// first time (version 0) and the campaign index of campaigns new to a day
// (see index.go). written[i] is false when Redis no
// longer holds the token writes[i] was loaded at (another owner wrote, or
// Redis lost writes in a crash or a failover): the caller's copy is stale
// and must be dropped. A written day's version moves on and its records are
// clean.
//
// The calls are independent: on a Redis Cluster they go to the masters of
// their slots, and one node failing does not undo what the others wrote.
// When some calls fail (and the others answered), the error is a
// *SaveError naming the writes of the failed calls, and written reports the
// others as usual; the failed days are left as they were, to be written
// again (a failed call may still have been applied, e.g. when the answer
// was lost: the retry is then refused, as a stale copy's). Any other error
// means nothing is known: written is nil.
func (s *Store) SaveDays(ctx context.Context, writes []DayWrite) (written []bool, err error) {
	if len(writes) == 0 {
		return nil, nil
	}
	// New days and campaigns go into their indexes first, in a round trip
	// of their own (index.go): data without an index entry must never exist.
	if err := s.indexNew(ctx, writes); err != nil {
		return nil, err
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
		keys []string
		args []any
	}
	var calls []call
	var sec [4][]any  // per call: day, hour, breakdown and order arguments
	var counts []byte // per call: each day's share of sec, ARGV[8]
	var rsec []any    // per call: recipient arguments
	var rkeys []string
	// Each call's own error is read below: a pipeline's error is only its
	// first failed command's.
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, ck := range order {
			idx := byCall[ck]
			for len(idx) > 0 {
				n := min(len(idx), maxDaysPerCall)
				dh, hh, bh := s.DayRedisKeys(writes[idx[0]].Key)
				keys := []string{dh, hh, bh}
				for j := range sec {
					sec[j] = sec[j][:0]
				}
				rsec, rkeys = rsec[:0], rkeys[:0]
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
					counts = append(strconv.AppendInt(counts, int64(flags), 10), ',')
					nk, na := len(rkeys), len(rsec)
					rsec, rkeys = s.recipientArgs(buf, rsec, rkeys, w)
					counts = append(strconv.AppendInt(counts, int64(len(rkeys)-nk), 10), ',')
					counts = append(strconv.AppendInt(counts, int64(len(rsec)-na), 10), ';')
					buf.args = append(buf.args, DayField(w.Key)+fieldGuard, w.Day.guardToken(), w.Day.pendingGuard)
					if cnt[3] > 0 {
						keys = append(keys, s.ordersKey(w.Key))
					}
				}
				for j := range sec {
					buf.args[start+3+j] = len(sec[j])
					buf.args = append(buf.args, sec[j]...)
				}
				buf.args = append(buf.args, len(rsec))
				buf.args = append(buf.args, rsec...)
				keys = append(keys, rkeys...)
				buf.args[start+7] = string(counts)
				args := buf.args[start:len(buf.args):len(buf.args)]
				calls = append(calls, call{saveDaysScript.EvalSha(ctx, p, keys, args...), idx[:n], keys, args})
				idx = idx[n:]
			}
		}
		return nil
	})
	// A server without the script cached (just started, restarted, or a
	// replica promoted after a failover: Redis does not replicate its
	// script cache) answers NOSCRIPT without running it. Those calls go
	// again with the script's text (EVAL, which caches it there).
	var again []*call
	for i := range calls {
		if redis.HasErrorPrefix(calls[i].cmd.Err(), "NOSCRIPT") {
			again = append(again, &calls[i])
		}
	}
	if len(again) > 0 {
		_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, c := range again {
				c.cmd = saveDaysScript.Eval(ctx, p, c.keys, c.args...)
			}
			return nil
		})
	}
	clear(buf.args[:cap(buf.args)])
	for j := range sec {
		clear(sec[j][:cap(sec[j])])
	}
	clear(rsec[:cap(rsec)])
	written = make([]bool, len(writes))
	var failed *SaveError
	for _, c := range calls {
		res, err := c.cmd.Int64Slice()
		if err == nil && len(res) != len(c.days) {
			err = fmt.Errorf("%d results for %d days", len(res), len(c.days))
		}
		if err != nil {
			if failed == nil {
				failed = &SaveError{Err: fmt.Errorf("save %s and %d more days: %w", s.dayBase(writes[c.days[0]].Key), len(c.days)-1, err)}
			}
			failed.Failed = append(failed.Failed, c.days...)
			continue
		}
		for j, i := range c.days {
			written[i] = res[j] == 1
			if written[i] {
				writes[i].Day.saved(writes[i].Details)
			}
		}
	}
	if failed != nil {
		failed.Days = len(writes)
		slices.Sort(failed.Failed)
		return written, failed
	}
	return written, nil
}

// SaveError is SaveDays' error when some of its script calls failed: the
// days of Failed (indexes into its writes) were not written, or not known
// to be; the other days' results are in written.
type SaveError struct {
	Failed []int
	// Days is the number of days the save was given.
	Days int
	// Err is the first failed call's error.
	Err error
}

func (e *SaveError) Error() string {
	return fmt.Sprintf("%v (%d of %d days not saved)", e.Err, len(e.Failed), e.Days)
}

func (e *SaveError) Unwrap() error { return e.Err }

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
		lists := map[string][]string{} // by list field
		for id, r := range d.Records {
			if d.newRecords&idsBit(id) != 0 {
				if r.rid == "" {
					r.rid = rid(id)
				}
				lf := idsField(id)
				lists[lf] = append(lists[lf], r.rid)
			}
		}
		for lf, ids := range lists {
			slices.Sort(ids)
			sec[0] = append(sec[0], f+lf, strings.Join(ids, ","))
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
				sec[3] = append(sec[3], of+r.rid+"|"+o, d.orderPosition(o))
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
			if !b.changed && !newValues {
				continue
			}
			ks := strconv.Itoa(int(kind))
			for dim, vals := range b.Dims {
				for value, sc := range vals {
					if !sc.dirty && !newValues {
						continue
					}
					bf := ks + "|" + dim + "|" + value
					if newValues {
						bids = appendEntry(bids, bf)
					}
					if !sc.dirty {
						continue
					}
					n1 := len(buf.bytes)
					buf.bytes = append(strconv.AppendUint(buf.bytes, sc.Total, 10), ':')
					appendSketch(buf, sc.Sketch)
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

// appendPositions appends ps encoded (appendPositionsTo) to buf and returns
// those bytes.
func appendPositions(buf *argBuf, ps Positions) []byte {
	n := len(buf.bytes)
	buf.bytes = appendPositionsTo(buf.bytes, ps)
	return buf.bytes[n:len(buf.bytes):len(buf.bytes)]
}

// appendSketch appends sk serialized to buf and returns those bytes.
func appendSketch(buf *argBuf, sk *hyperloglog.Sketch) []byte {
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

// recordArgs appends the changed fields of one record, named with the
// day's field prefix f: its count (total and sketch) when either changed,
// reasons, named sums, values and its order count.
func (s *Store) recordArgs(buf *argBuf, args []any, f string, r *Record, id RecordID) []any {
	if r.rid == "" {
		r.rid = rid(id)
	}
	n0 := len(buf.bytes)
	buf.bytes = append(strconv.AppendUint(buf.bytes, r.Total, 10), ':')
	n1 := len(buf.bytes)
	appendSketch(buf, r.Sketch)
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
	if len(r.Sums) > 0 {
		args = append(args, f+fieldSums+"|"+r.rid, encodeCounts(r.Sums))
	}
	if len(r.Value) > 0 {
		args = append(args, f+"v|"+r.rid, encodeValues(r.Value))
	}
	if len(r.newOrders) > 0 {
		args = append(args, f+"oc|"+r.rid, r.NOrders)
	}
	return args
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
	clear(d.recipients)
	if details {
		for _, b := range d.Breakdowns {
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
