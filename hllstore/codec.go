package hllstore

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pixelpipe/pixelpipe/internal/money"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

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

// appendGuard appends the guard value of d written with token:
// "<token>/<version>/<positions>/<o>/<hours>", then "/<session positions>"
// when d has applied session events (a day without any keeps the five parts
// it had before visits were counted).
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
	b = strconv.AppendUint(b, uint64(hours), 16)
	if len(d.SPos) > 0 {
		b = append(b, '/')
		b = appendSessionPositionsTo(b, d.SPos)
	}
	return b
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
		// Five parts, and a sixth with the session positions (appendGuard).
		parts := strings.Split(g, "/")
		if len(parts) != 5 && len(parts) != 6 {
			return nil, nil, nil, fmt.Errorf("%w: guard %q", ErrCorrupt, g)
		}
		if len(parts) == 6 && decodeSessionPositions(d.SPos, parts[5]) != nil {
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

// appendCount appends the c field of a record: total, ":", sketch.
func appendCount(b []byte, total uint64, sketch []byte) []byte {
	b = strconv.AppendUint(b, total, 10)
	b = append(b, ':')
	return append(b, sketch...)
}

// decodeField sets one field (c, r, s, v, oc) of r.
func (r *Count) decodeField(kind, v string) error {
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
	case "r", fieldSums, "v":
		for line := range strings.SplitSeq(v, "\n") {
			if line == "" {
				continue
			}
			name, num, ok := strings.Cut(line, "=")
			if !ok {
				return fmt.Errorf("%w: %s %q", ErrCorrupt, kind, line)
			}
			if kind != "v" {
				n, err := strconv.ParseUint(num, 10, 64)
				if err != nil {
					return fmt.Errorf("%w: %s %q", ErrCorrupt, kind, line)
				}
				m := &r.Reasons
				if kind == fieldSums {
					m = &r.Sums
				}
				if *m == nil {
					*m = map[string]uint64{}
				}
				(*m)[name] = n
				continue
			}
			sum, err := money.ParseMicros(num)
			if err != nil {
				return fmt.Errorf("%w: %s %q", ErrCorrupt, kind, line)
			}
			if r.Value == nil {
				r.Value = map[string]money.Sum{}
			}
			r.Value[name] = sum
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

// appendPositionsTo appends ps encoded as "<partition>:<offset>" pairs
// joined by "," (partitions in increasing order) to b.
func appendPositionsTo(b []byte, ps Positions) []byte {
	return appendByPartition(b, ps, func(b []byte, o int64) []byte { return strconv.AppendInt(b, o, 10) })
}

// decodePositions adds the positions encoded in v (appendPositionsTo) to ps.
func decodePositions(ps Positions, v string) error {
	return decodeByPartition(ps, v, func(s string) (int64, bool) {
		o, err := strconv.ParseInt(s, 10, 64)
		return o, err == nil
	})
}

// appendSessionPositionsTo appends ps encoded as
// "<partition>:<offset>.<index>" pairs joined by "," (partitions in
// increasing order) to b.
func appendSessionPositionsTo(b []byte, ps SessionPositions) []byte {
	return appendByPartition(b, ps, func(b []byte, sp SessionPos) []byte {
		b = strconv.AppendInt(b, sp.Offset, 10)
		b = append(b, '.')
		return strconv.AppendUint(b, uint64(sp.Index), 10)
	})
}

// decodeSessionPositions adds the positions encoded in v
// (appendSessionPositionsTo) to ps.
func decodeSessionPositions(ps SessionPositions, v string) error {
	return decodeByPartition(ps, v, func(s string) (SessionPos, bool) {
		otxt, itxt, ok := strings.Cut(s, ".")
		o, err1 := strconv.ParseInt(otxt, 10, 64)
		i, err2 := strconv.ParseUint(itxt, 10, 32)
		return SessionPos{Offset: o, Index: uint32(i)}, ok && err1 == nil && err2 == nil
	})
}

// appendByPartition appends m as "<partition>:<value>" pairs joined by ","
// (partitions in increasing order, each value written by val) to b.
func appendByPartition[M ~map[int32]V, V any](b []byte, m M, val func([]byte, V) []byte) []byte {
	parts := make([]int32, 0, len(m))
	for p := range m {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for i, p := range parts {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(p), 10)
		b = append(b, ':')
		b = val(b, m[p])
	}
	return b
}

// decodeByPartition adds the pairs encoded in v (appendByPartition) to m,
// each value read by parse.
func decodeByPartition[M ~map[int32]V, V any](m M, v string, parse func(string) (V, bool)) error {
	for pair := range strings.SplitSeq(v, ",") {
		if pair == "" {
			continue
		}
		ptxt, vtxt, ok := strings.Cut(pair, ":")
		p, err := strconv.ParseInt(ptxt, 10, 32)
		val, valid := parse(vtxt)
		if !ok || err != nil || !valid {
			return errors.New("bad position")
		}
		m[int32(p)] = val
	}
	return nil
}

// encodeCounts writes m as "<name>=<n>\n" lines in name order.
func encodeCounts(m map[string]uint64) string {
	return encodeLines(m, func(n uint64) string { return strconv.FormatUint(n, 10) })
}

// encodeValues writes value sums as "<currency>=<micros>\n" lines.
func encodeValues(m map[string]money.Sum) string { return encodeLines(m, money.Sum.Micros) }

func encodeLines[N any](m map[string]N, format func(N) string) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(format(m[k]))
		b.WriteByte('\n')
	}
	return b.String()
}
