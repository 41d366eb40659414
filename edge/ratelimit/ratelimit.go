// Package ratelimit estimates the hit rate of each client in memory that is
// fixed when the table is made, however many clients there are: a
// count-min sketch of two rows of cells, each cell a sliding one-second
// window. A key's estimate is the smaller of its two cells, so it never
// under-counts; it over-counts only when another busy key shares both of
// its cells (with 65,536 cells a row, about 1 in 4·10^9 per pair of keys).
//
// Observe is safe for concurrent use, lock-free (one compare-and-swap per
// row) and does not allocate.
package ratelimit

import (
	"hash/maphash"
	"sync/atomic"
	"time"
)

// A cell packs a window number and two counts in one word, so it is read
// and updated with one atomic operation:
//
//	bits 40-63: window number (Unix time / window, modulo 2^24)
//	bits 20-39: hits in the previous window
//	bits  0-19: hits in the current window (saturating at 2^20-1)
const (
	countBits = 20
	countMax  = 1<<countBits - 1
	winBits   = 24
	winMask   = 1<<winBits - 1
)

// Table is a per-key rate estimator of bounded size.
type Table struct {
	seed   maphash.Seed
	mask   uint64
	rows   [2][]atomic.Uint64
	window int64 // nanoseconds
}

// New returns a table of 2 rows of cells cells each (rounded up to a power
// of two; 8 bytes a cell) measuring rates per window (one second is what
// Observe's result is then per).
func New(cells int, window time.Duration) *Table {
	n := 1
	for n < cells {
		n <<= 1
	}
	if window <= 0 {
		panic("BUG: ratelimit.New: window must be positive")
	}
	t := &Table{seed: maphash.MakeSeed(), mask: uint64(n - 1), window: int64(window)}
	for i := range t.rows {
		t.rows[i] = make([]atomic.Uint64, n)
	}
	return t
}

// Bytes is the table's memory, fixed at New.
func (t *Table) Bytes() int { return 2 * 8 * len(t.rows[0]) }

// Observe counts one hit of key at nowNs (Unix nanoseconds) and returns the
// key's estimated hits in the last window, this one included: the current
// window's count plus the previous window's, weighted by how much of it the
// sliding window still covers. key is only read.
func (t *Table) Observe(key []byte, nowNs int64) uint32 {
	h := maphash.Bytes(t.seed, key)
	a := t.observe(&t.rows[0][h&t.mask], nowNs)
	b := t.observe(&t.rows[1][(h>>32)&t.mask], nowNs)
	return min(a, b)
}

func (t *Table) observe(c *atomic.Uint64, nowNs int64) uint32 {
	w := nowNs / t.window
	off := nowNs - w*t.window
	win := uint64(w) & winMask
	for {
		old := c.Load()
		owin, prev, cur := old>>(2*countBits), old>>countBits&countMax, old&countMax
		switch {
		case owin == win:
			if cur < countMax {
				cur++
			}
		case owin == (win-1)&winMask:
			prev, cur = cur, 1
		default:
			prev, cur = 0, 1
		}
		if c.CompareAndSwap(old, win<<(2*countBits)|prev<<countBits|cur) {
			return uint32(cur + prev*uint64(t.window-off)/uint64(t.window))
		}
	}
}
