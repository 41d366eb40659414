package hllstore

import (
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"strings"
)

// Recipient activity. Events that name a recipient (a uid the sender puts
// in its pixel and link URLs, carried as a keyed hash, the recipient key)
// and a campaign leave per recipient what they did: opens (a person's or a
// machine's: mail privacy proxies, scanners), clicks per link, conversions
// with their orders, page views, and the uid itself where the sender asked
// for it. The activity belongs to the day of the event's content id, like
// its counts: the aggregator writes what changed since the last write of the
// day in the same script call as the day's records, under the same guard,
// and only for events that count in the day (not yet covered by its
// positions). So a recipient's activity is counted exactly once through
// replays, restarts and rebalances, without a Redis write per hit.
//
// Layout, under the hash tag of the content id's group and day:
//
//	<prefix>:c:{<group>:<yyyymmdd>}:<content>:r:<campaign>:<bb>  recipients of bucket bb
//	<prefix>:c:{<group>:<yyyymmdd>}:<content>:l:<campaign>       the campaign's links on the content id
//	<prefix>:c:{<group>:<yyyymmdd>}:<content>:k:<campaign>:<bb>  who of bucket bb clicked them
//
// A recipient falls in bucket bb, the first byte of its key in two hex
// digits (RecipientBuckets buckets, even, as keys are keyed hashes): a page
// of a campaign's recipients reads one or more buckets of every day of the
// campaign, so a campaign of a million recipients pages a few thousand at
// a time. In a bucket hash the field is the recipient key (16 raw bytes)
// and the value its activity (encodeActivity), merged into by the save
// script. The links hash holds per link id (LinkID, of the redacted
// destination) "d|<id>" the destination, "n|<id>" a person's clicks and
// "m|<id>" a machine's; the clickers hash of a bucket "u|<id>|<key>" per
// recipient of the bucket who clicked it (unique clickers, exact across
// days; apart, so that reading the destinations stays a few fields per
// link, and by bucket, an index of the clickers that pages like the
// recipients). All live
// RecipientRetention from their first write.
//
// The tenant index "<prefix>:rt:<tenant>" (a set of
// "<yyyymmdd>|<content>|<campaign>") names where a tenant's recipients have
// activity, for erasure (EraseRecipient); it is written before the data,
// like the day and campaign indexes.

// RecipientKeySize is the length of a recipient key.
const RecipientKeySize = 16

// RecipientKey is a recipient's keyed hash (Event.recipient_key).
type RecipientKey [RecipientKeySize]byte

// String returns k in hex.
func (k RecipientKey) String() string { return hex.EncodeToString(k[:]) }

// ParseRecipientKey parses 32 hex digits.
func ParseRecipientKey(s string) (RecipientKey, bool) {
	var k RecipientKey
	if len(s) != 2*RecipientKeySize {
		return k, false
	}
	_, err := hex.Decode(k[:], []byte(s))
	return k, err == nil
}

// RecipientBuckets is the number of buckets of a campaign's recipients per
// content id and day.
const RecipientBuckets = 256

// Bucket returns k's bucket.
func (k RecipientKey) Bucket() int { return int(k[0]) }

// Activity is what a recipient did: pending in a Day (the change since its
// last write), or read back and merged over a campaign's days.
type Activity struct {
	// UID is the recipient id as the sender gave it, only where the sender
	// asked for it (Event.recipient_id).
	UID string
	// Opens and MachineOpens count a person's and a machine's opens; the
	// first and last of each are in milliseconds since the epoch (0: none).
	Opens, MachineOpens               uint64
	FirstOpenMs, LastOpenMs           int64
	FirstMachineOpenMs, LastMachineMs int64
	// Views counts page views of a person with the recipient's id.
	Views uint64
	// Clicks holds a person's clicks per link id; MachineClicks counts a
	// machine's (link scanners).
	Clicks        map[string]uint64
	MachineClicks uint64
	// Orders holds the conversions with an order id (one per order), and
	// Conversions counts those without one.
	Orders      []Order
	Conversions uint64
	// dests holds the destination of each link id clicked (pending only).
	dests map[string]linkDelta
}

// linkDelta is the change of one link of a pending Activity.
type linkDelta struct {
	dest    string
	machine uint64
}

// Order is a conversion with an order id.
type Order struct {
	ID          string
	ValueMicros int64
	Currency    string
}

// AddOpen adds an open at ms, a machine's or a person's.
func (a *Activity) AddOpen(ms int64, machine bool) {
	if machine {
		a.MachineOpens++
		a.FirstMachineOpenMs, a.LastMachineMs = minTime(a.FirstMachineOpenMs, ms), max(a.LastMachineMs, ms)
		return
	}
	a.Opens++
	a.FirstOpenMs, a.LastOpenMs = minTime(a.FirstOpenMs, ms), max(a.LastOpenMs, ms)
}

// AddClick adds a click on the link to dest (a redacted URL), a machine's
// or a person's.
func (a *Activity) AddClick(dest string, machine bool) {
	id := LinkID(dest)
	if a.dests == nil {
		a.dests = map[string]linkDelta{}
	}
	l := a.dests[id]
	l.dest = dest
	if machine {
		a.MachineClicks++
		l.machine++
	} else {
		if a.Clicks == nil {
			a.Clicks = map[string]uint64{}
		}
		a.Clicks[id]++
	}
	a.dests[id] = l
}

// AddConversion adds a conversion: with an order id once per order (a
// second with the same id is ignored), without one counted.
func (a *Activity) AddConversion(order string, valueMicros int64, currency string) {
	if order == "" {
		a.Conversions++
		return
	}
	for _, o := range a.Orders {
		if o.ID == order {
			return
		}
	}
	a.Orders = append(a.Orders, Order{ID: order, ValueMicros: valueMicros, Currency: currency})
}

// Merge adds b's activity to a (first times the earliest, last the latest,
// orders once per id, the uid b's when it has one).
func (a *Activity) Merge(b *Activity) {
	if b.UID != "" {
		a.UID = b.UID
	}
	a.Opens += b.Opens
	a.MachineOpens += b.MachineOpens
	a.FirstOpenMs, a.LastOpenMs = minTime(a.FirstOpenMs, b.FirstOpenMs), max(a.LastOpenMs, b.LastOpenMs)
	a.FirstMachineOpenMs, a.LastMachineMs = minTime(a.FirstMachineOpenMs, b.FirstMachineOpenMs), max(a.LastMachineMs, b.LastMachineMs)
	a.Views += b.Views
	for id, n := range b.Clicks {
		if a.Clicks == nil {
			a.Clicks = map[string]uint64{}
		}
		a.Clicks[id] += n
	}
	a.MachineClicks += b.MachineClicks
	for _, o := range b.Orders {
		a.AddConversion(o.ID, o.ValueMicros, o.Currency)
	}
	a.Conversions += b.Conversions
}

// HumanClicks returns the sum of a person's clicks.
func (a *Activity) HumanClicks() uint64 {
	var n uint64
	for _, c := range a.Clicks {
		n += c
	}
	return n
}

// Human reports whether a person opened, clicked or converted.
func (a *Activity) Human() bool {
	return a.Opens > 0 || len(a.Clicks) > 0 || len(a.Orders) > 0 || a.Conversions > 0
}

// MachineOnly reports whether only machines opened or clicked.
func (a *Activity) MachineOnly() bool {
	return !a.Human() && (a.MachineOpens > 0 || a.MachineClicks > 0)
}

// minTime is the earlier of two times, 0 being none.
func minTime(a, b int64) int64 {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// LinkID returns the id of a link destination: 12 hex digits of its FNV-1a
// (64 bits) hash. Destinations are redacted URLs, a handful per campaign.
func LinkID(dest string) string {
	h := uint64(14695981039346656037)
	for i := 0; i < len(dest); i++ {
		h ^= uint64(dest[i])
		h *= 1099511628211
	}
	var b [8]byte
	for i := range b {
		b[i] = byte(h >> (56 - 8*i))
	}
	return hex.EncodeToString(b[:6])
}

// Activity encoding: tokens joined by spaces, each a tag byte and a value:
// o opens, m machine opens, f and l the first and last open, F and L the
// first and last machine open, v views, c<link id>=<n> a person's clicks on
// a link, k machine clicks, x<order id>=<micros>:<currency> an order, n
// conversions without an order id, i the uid (escaped: no spaces). The save
// script merges a change into the stored value token by token: f and F keep
// the smaller, l and L the larger, x the first, i the latest, the others
// add. Tags are single bytes, so the format can grow.

// encodeActivity appends a's encoding to dst.
func encodeActivity(dst []byte, a *Activity) []byte {
	num := func(dst []byte, tag byte, n uint64) []byte {
		if n == 0 {
			return dst
		}
		if len(dst) > 0 {
			dst = append(dst, ' ')
		}
		return strconv.AppendUint(append(dst, tag), n, 10)
	}
	start := len(dst)
	sep := func(dst []byte) []byte {
		if len(dst) > start {
			dst = append(dst, ' ')
		}
		return dst
	}
	dst = num(dst, 'o', a.Opens)
	dst = num(dst, 'm', a.MachineOpens)
	dst = num(dst, 'f', uint64(max(a.FirstOpenMs, 0)))
	dst = num(dst, 'l', uint64(max(a.LastOpenMs, 0)))
	dst = num(dst, 'F', uint64(max(a.FirstMachineOpenMs, 0)))
	dst = num(dst, 'L', uint64(max(a.LastMachineMs, 0)))
	dst = num(dst, 'v', a.Views)
	dst = num(dst, 'k', a.MachineClicks)
	dst = num(dst, 'n', a.Conversions)
	ids := make([]string, 0, len(a.Clicks))
	for id := range a.Clicks {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		dst = append(sep(dst), 'c')
		dst = append(append(dst, id...), '=')
		dst = strconv.AppendUint(dst, a.Clicks[id], 10)
	}
	for _, o := range a.Orders {
		dst = append(append(sep(dst), 'x'), escapeToken(o.ID)...)
		dst = append(strconv.AppendInt(append(dst, '='), o.ValueMicros, 10), ':')
		dst = append(dst, escapeToken(o.Currency)...)
	}
	if a.UID != "" {
		dst = append(append(sep(dst), 'i'), escapeToken(a.UID)...)
	}
	return dst
}

// decodeActivity decodes a stored activity; ok is false for a malformed one.
func decodeActivity(s string) (a Activity, ok bool) {
	for tok := range strings.FieldsSeq(s) {
		tag, v := tok[0], tok[1:]
		switch tag {
		case 'c', 'x':
			name, val, found := strings.Cut(v, "=")
			if !found {
				return a, false
			}
			if tag == 'c' {
				n, err := strconv.ParseUint(val, 10, 64)
				if err != nil {
					return a, false
				}
				if a.Clicks == nil {
					a.Clicks = map[string]uint64{}
				}
				a.Clicks[name] += n
				continue
			}
			micros, cur, _ := strings.Cut(val, ":")
			m, err := strconv.ParseInt(micros, 10, 64)
			id, err2 := unescapeToken(name)
			cur, err3 := unescapeToken(cur)
			if err != nil || err2 != nil || err3 != nil {
				return a, false
			}
			a.AddConversion(id, m, cur)
		case 'i':
			uid, err := unescapeToken(v)
			if err != nil {
				return a, false
			}
			a.UID = uid
		default:
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return a, false
			}
			switch tag {
			case 'o':
				a.Opens = n
			case 'm':
				a.MachineOpens = n
			case 'f':
				a.FirstOpenMs = int64(n)
			case 'l':
				a.LastOpenMs = int64(n)
			case 'F':
				a.FirstMachineOpenMs = int64(n)
			case 'L':
				a.LastMachineMs = int64(n)
			case 'v':
				a.Views = n
			case 'k':
				a.MachineClicks = n
			case 'n':
				a.Conversions = n
			}
			// Unknown tags (a newer writer's) are skipped.
		}
	}
	return a, true
}

// escapeToken percent-encodes the bytes that would end or split a token:
// spaces and other bytes up to 0x20, '=', '%' and 0x7f.
func escapeToken(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if needsEscape(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexd = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if needsEscape(c) {
			b = append(b, '%', hexd[c>>4], hexd[c&15])
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

func needsEscape(c byte) bool { return c <= ' ' || c == '=' || c == '%' || c == 0x7f }

var errBadEscape = errors.New("bad escape")

// unescapeToken reverses escapeToken.
func unescapeToken(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errBadEscape
		}
		v, err := hex.DecodeString(s[i+1 : i+3])
		if err != nil {
			return "", errBadEscape
		}
		b = append(b, v[0])
		i += 2
	}
	return string(b), nil
}
