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

// Record is the stored state of one Key.
type Record struct {
	// Total is the exact number of distinct events.
	Total uint64
	// Sketch holds the visitor keys.
	Sketch *hyperloglog.Sketch
	// Pos holds the last source position applied per partition. Records of
	// one Day share their Day's positions; Pos is filled by Load for readers.
	Pos Positions
	// Version is the version of the record's Day when it was loaded or last
	// written; Load sets it above 0 for a record that exists (0: never
	// written).
	Version uint64
	// Reasons counts bot and machine events per reason code (one event may
	// carry several reasons).
	Reasons map[string]uint64
	// Orders holds the distinct order ids of conversions (filled for the
	// writer; readers get NOrders only); NOrders counts them. Value sums
	// their value per currency, in millionths, each order counted once
	// (128-bit sums: no number of orders makes them overflow).
	Orders  map[string]struct{}
	NOrders uint64
	Value   map[string]money.Sum
	// Mark is the owner's to use (the aggregator's snapshot and top-N
	// flags); it is never stored.
	Mark uint8
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
	dense                      bool   // the sketch was loaded dense
}

// DenseSketch reports whether the sketch was loaded in its dense form
// (readers merge those first).
func (r *Record) DenseSketch() bool { return r.dense }

// NewRecord returns an empty record.
func NewRecord() Record {
	return Record{Sketch: NewSketch(), Pos: Positions{}}
}

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
	fieldGuard   = "g"   // of a day: "<token>/<version>/<positions>/<o>/<hours>"
	fieldIDs     = "ids" // of a day: its day records' rids ("ids|<hh>": its hour records')
	fieldCount   = "c"   // of a record: "<total>:<sketch>"

	fieldBreakdownPositions = "bpos" // of a day in the breakdown hash
	fieldBreakdownIDs       = "bids" // of a day: its breakdown values
)
