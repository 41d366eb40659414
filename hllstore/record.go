package hllstore

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/axiomhq/hyperloglog"
)

// ErrCorrupt means a stored record could not be decoded.
var ErrCorrupt = errors.New("corrupt count record")

// Positions maps a source partition of pixel.hits.v1 to the offset of the last
// hit applied to a record.
type Positions map[int32]int64

// Covers reports whether the hit at partition p, offset o was already applied.
func (ps Positions) Covers(p int32, o int64) bool {
	last, ok := ps[p]
	return ok && o <= last
}

func (ps Positions) encode() string {
	parts := make([]int32, 0, len(ps))
	for p := range ps {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	var b strings.Builder
	for _, p := range parts {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(int64(p), 10))
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(ps[p], 10))
	}
	return b.String()
}

func decodePositions(s string) (Positions, error) {
	ps := Positions{}
	if s == "" {
		return ps, nil
	}
	for _, part := range strings.Split(s, ",") {
		ps1, os1, ok := strings.Cut(part, ":")
		p, err1 := strconv.ParseInt(ps1, 10, 32)
		o, err2 := strconv.ParseInt(os1, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w: bad position %q", ErrCorrupt, part)
		}
		ps[int32(p)] = o
	}
	return ps, nil
}

// Record is the stored state of one Key.
type Record struct {
	// Total is the exact number of distinct events.
	Total uint64
	// Sketch holds the visitor keys.
	Sketch *hyperloglog.Sketch
	// Pos holds the last source position applied per partition.
	Pos Positions
	// Version counts the writes of the record; a write succeeds only over
	// the version it was loaded at.
	Version uint64
	// Reasons counts bot and machine events per reason code (one event may
	// carry several reasons).
	Reasons map[string]uint64
	// Orders holds the distinct order ids of conversions; Value sums their
	// value per currency, in millionths, each order counted once.
	Orders map[string]struct{}
	Value  map[string]int64
	// newOrders lists orders added since the record was loaded: only they
	// are written (order fields are never rewritten).
	newOrders []string
}

// NewRecord returns an empty record.
func NewRecord() Record {
	return Record{Sketch: NewSketch(), Pos: Positions{}}
}

// AddOrder records a conversion's order and value; it reports false (and
// changes nothing) when the order was already counted.
func (r *Record) AddOrder(orderID, currency string, micros int64) bool {
	if r.Orders == nil {
		r.Orders = map[string]struct{}{}
	}
	if _, ok := r.Orders[orderID]; ok {
		return false
	}
	r.Orders[orderID] = struct{}{}
	r.newOrders = append(r.newOrders, orderID)
	if currency != "" && micros != 0 {
		if r.Value == nil {
			r.Value = map[string]int64{}
		}
		r.Value[currency] += micros
	}
	return true
}

// AddReason counts one event with reason code.
func (r *Record) AddReason(reason string) {
	if r.Reasons == nil {
		r.Reasons = map[string]uint64{}
	}
	r.Reasons[reason]++
}

// Field names of a record hash. Reasons, orders and values are one field
// each, prefixed r:, o: and v:.
const (
	fieldTotal     = "n"
	fieldSketch    = "h"
	fieldPositions = "pos"
	fieldVersion   = "ver"
)

// decodeRecord reads the fields of HGETALL.
func decodeRecord(fields map[string]string) (Record, error) {
	r := NewRecord()
	for f, v := range fields {
		switch {
		case f == fieldTotal:
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return r, fmt.Errorf("%w: total %q", ErrCorrupt, v)
			}
			r.Total = n
		case f == fieldSketch:
			if v == "" {
				continue
			}
			if err := r.Sketch.UnmarshalBinary([]byte(v)); err != nil {
				return r, fmt.Errorf("%w: sketch: %v", ErrCorrupt, err)
			}
		case f == fieldVersion:
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return r, fmt.Errorf("%w: version %q", ErrCorrupt, v)
			}
			r.Version = n
		case f == fieldPositions:
			ps, err := decodePositions(v)
			if err != nil {
				return r, err
			}
			r.Pos = ps
		case strings.HasPrefix(f, "r:"):
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return r, fmt.Errorf("%w: reason %s=%q", ErrCorrupt, f, v)
			}
			if r.Reasons == nil {
				r.Reasons = map[string]uint64{}
			}
			r.Reasons[f[2:]] = n
		case strings.HasPrefix(f, "o:"):
			if r.Orders == nil {
				r.Orders = map[string]struct{}{}
			}
			r.Orders[f[2:]] = struct{}{}
		case strings.HasPrefix(f, "v:"):
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return r, fmt.Errorf("%w: value %s=%q", ErrCorrupt, f, v)
			}
			if r.Value == nil {
				r.Value = map[string]int64{}
			}
			r.Value[f[2:]] = n
		}
	}
	return r, nil
}
