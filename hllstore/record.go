package hllstore

import (
	"errors"

	"github.com/axiomhq/hyperloglog"

	"github.com/pixelpipe/pixelpipe/internal/money"
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

// SessionPos is the source position of a session event (a visit, kind
// KIND_SESSION): the offset of the hit or clock tick whose processing closed
// the visit, and the visit's index among the visits that record closed.
type SessionPos struct {
	Offset int64
	Index  uint32
}

// SessionPositions maps a source partition of pixel.hits.v1 to the position
// of the last session event applied to a day's records. Visits have
// positions of their own, apart from the hits' (Positions): a visit shares
// the offset of the hit that closed it, and both count.
type SessionPositions map[int32]SessionPos

// Covers reports whether the session event at partition p, offset o, index
// i was already applied: (o, i) is at or before the last one applied,
// offsets compared first.
func (ps SessionPositions) Covers(p int32, o int64, i uint32) bool {
	last, ok := ps[p]
	return ok && (o < last.Offset || o == last.Offset && i <= last.Index)
}

// Count is what one stored record holds for its readers: what Load returns
// for a Key, and the counted part of a writer's Record.
type Count struct {
	// Total is the exact number of distinct events.
	Total uint64
	// Sketch holds the visitor keys.
	Sketch *hyperloglog.Sketch
	// Version is the version of the record's Day when it was read or last
	// written (1 for a week rollup); Load sets it above 0 for a record that
	// exists (0: never written).
	Version uint64
	// Reasons counts bot and machine events per reason code (one event may
	// carry several reasons).
	Reasons map[string]uint64
	// NOrders counts the distinct orders of conversions. Value sums their
	// value per currency, in millionths, each order counted once (128-bit
	// sums: no number of orders makes them overflow).
	NOrders uint64
	Value   map[string]money.Sum
	// Sums holds named sums over the record's events; records of kind
	// KIND_SESSION (visits) keep SumBounces, SumDurationMs and SumPages.
	Sums  map[string]uint64
	dense bool // the sketch was read dense
}

// Names of Count.Sums of visit records (kind KIND_SESSION).
const (
	SumBounces    = "bounces"     // visits with at most one page view
	SumDurationMs = "duration_ms" // summed visit durations (last hit minus first), milliseconds
	SumPages      = "pages"       // summed page views of the visits
)

// NewCount returns an empty count.
func NewCount() Count { return Count{Sketch: NewSketch()} }

// DenseSketch reports whether the sketch was read in its dense form
// (readers merge those first).
func (c *Count) DenseSketch() bool { return c.dense }

// Record is a writer's copy of one record of a Day: its Count, the order
// ids behind NOrders, and what changed since it was last written, so that
// SaveDays writes only that.
type Record struct {
	Count
	// Orders holds the distinct order ids of conversions (NOrders counts
	// them).
	Orders map[string]struct{}
	// newOrders lists orders added since the record was last written: only
	// they are written (order fields are never rewritten).
	newOrders []string
	// dirty: changed since the last write. savedTotal and savedSketch are
	// the total and a hash of the sketch's bytes as last written, so a
	// write carries only the fields that changed; pendingSketch is the hash
	// of the sketch being written.
	dirty                      bool
	savedTotal                 uint64
	savedSketch, pendingSketch uint64
	rid                        string // field name suffix, cached
}

// NewRecord returns an empty record.
func NewRecord() Record { return Record{Count: NewCount()} }

// Add counts one event of visitor (a hashed visitor key).
func (r *Record) Add(visitor uint64) {
	r.Total++
	r.Sketch.InsertHash(visitor)
	r.dirty = true
}

// Dirty reports whether r changed since it was last written.
func (r *Record) Dirty() bool { return r.dirty }

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
	r.NOrders++
	r.newOrders = append(r.newOrders, orderID)
	if currency != "" && micros != 0 {
		if r.Value == nil {
			r.Value = map[string]money.Sum{}
		}
		v := r.Value[currency]
		v.Add(micros)
		r.Value[currency] = v
	}
	r.dirty = true
	return true
}

// AddSum adds n to the named sum.
func (r *Record) AddSum(name string, n uint64) {
	if r.Sums == nil {
		r.Sums = map[string]uint64{}
	}
	r.Sums[name] += n
	r.dirty = true
}

// AddReason counts one event with reason code.
func (r *Record) AddReason(reason string) {
	if r.Reasons == nil {
		r.Reasons = map[string]uint64{}
	}
	r.Reasons[reason]++
	r.dirty = true
}

// Guard fields of a day hash.
const (
	fieldVersion = "ver" // of a week rollup
	fieldGuard   = "g"   // of a day: "<token>/<version>/<positions>/<o>/<hours>[/<session positions>]"
	fieldIDs     = "ids" // of a day: its day records' rids ("ids|<hh>": its hour records')
	fieldCount   = "c"   // of a record: "<total>:<sketch>"
	fieldSums    = "s"   // of a record: its named sums, "<name>=<n>" lines

	fieldBreakdownPositions = "bpos" // of a day in the breakdown hash
	fieldBreakdownIDs       = "bids" // of a day: its breakdown values
)
