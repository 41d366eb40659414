package state

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pixelpipe/pixelpipe/processor/session"
)

// A blob (a base or a delta) is
//
//	version byte (blobVersion)
//	uvarint n, then n states
//	uvarint g, then g evicted visitors (8 bytes each; always 0 in a base)
//
// and a state is
//
//	visitor 8 bytes, varint newest, varint rateMinute, uvarint rateCount,
//	uvarint alias, varint hold,
//	uvarint seen, then per id: 16 bytes, uvarint (newest - at),
//	open flag byte (0 none, 1 or 2 open), then when open:
//	  16 bytes id, string site, string campaign, varint start, varint last,
//	  uvarint seq, uvarint pages, string landing, string exit, string referrer,
//	  and with flag 2: string content, human byte (0 or 1)
//
// Flag 1 is what states written before sessions knew their landing content
// id hold: it decodes as a human session without a content id.
// with strings as uvarint length and bytes. Integers are little-endian.
const blobVersion = 1

var errShort = errors.New("truncated")

// appendBlob encodes states and evicted visitors.
func appendBlob(b []byte, states []*session.State, gone []uint64) []byte {
	b = append(b, blobVersion)
	b = binary.AppendUvarint(b, uint64(len(states)))
	for _, st := range states {
		b = appendState(b, st)
	}
	b = binary.AppendUvarint(b, uint64(len(gone)))
	for _, v := range gone {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

func appendState(b []byte, st *session.State) []byte {
	b = binary.LittleEndian.AppendUint64(b, st.Visitor)
	b = binary.AppendVarint(b, st.NewestMs)
	b = binary.AppendVarint(b, st.RateMinute)
	b = binary.AppendUvarint(b, uint64(st.RateCount))
	b = binary.AppendUvarint(b, st.Alias)
	b = binary.AppendVarint(b, st.HoldMs)
	b = binary.AppendUvarint(b, uint64(len(st.Seen)))
	for _, s := range st.Seen {
		b = append(b, s.ID[:]...)
		b = binary.AppendUvarint(b, uint64(st.NewestMs-s.AtMs))
	}
	o := st.Open
	if o == nil {
		return append(b, 0)
	}
	b = append(b, 2)
	b = append(b, o.ID[:]...)
	b = appendString(b, o.Site)
	b = appendString(b, o.Campaign)
	b = binary.AppendVarint(b, o.StartMs)
	b = binary.AppendVarint(b, o.LastMs)
	b = binary.AppendUvarint(b, uint64(o.Seq))
	b = binary.AppendUvarint(b, uint64(o.Pages))
	b = appendString(b, o.Landing)
	b = appendString(b, o.Exit)
	b = appendString(b, o.Referrer)
	b = appendString(b, o.Content)
	if o.Human {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads a blob; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) fixed(n int) []byte {
	if len(d.b) < n {
		d.fail(errShort)
		return make([]byte, n)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) uint32() uint32 {
	v := d.uvarint()
	if v > 1<<32-1 {
		d.fail(fmt.Errorf("counter %d out of range", v))
	}
	return uint32(v)
}

// count reads a length that must fit in what is left of the blob, at least
// min bytes per item, so a corrupt length cannot make the decoder allocate
// more than the blob's size.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/min) {
		d.fail(fmt.Errorf("count %d exceeds the %d bytes left", n, len(d.b)))
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.count(1)
	return string(d.fixed(n))
}

// decodeBlob decodes a blob made by appendBlob.
func decodeBlob(b []byte) (states []*session.State, gone []uint64, err error) {
	if len(b) == 0 || b[0] != blobVersion {
		return nil, nil, fmt.Errorf("unknown state blob version (first byte of %d)", len(b))
	}
	d := &decoder{b: b[1:]}
	n := d.count(13) // the least a state takes
	states = make([]*session.State, 0, n)
	for range n {
		states = append(states, d.state())
	}
	g := d.count(8)
	gone = make([]uint64, 0, g)
	for range g {
		gone = append(gone, binary.LittleEndian.Uint64(d.fixed(8)))
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes after the last state", len(d.b))
	}
	if d.err != nil {
		return nil, nil, fmt.Errorf("decode state blob: %w", d.err)
	}
	return states, gone, nil
}

func (d *decoder) state() *session.State {
	st := &session.State{Visitor: binary.LittleEndian.Uint64(d.fixed(8))}
	st.NewestMs = d.varint()
	st.RateMinute = d.varint()
	st.RateCount = d.uint32()
	st.Alias = d.uvarint()
	st.HoldMs = d.varint()
	if n := d.count(17); n > 0 {
		st.Seen = make([]session.Seen, n)
		for i := range st.Seen {
			copy(st.Seen[i].ID[:], d.fixed(16))
			st.Seen[i].AtMs = st.NewestMs - int64(d.uvarint())
		}
	}
	switch flag := d.fixed(1)[0]; flag {
	case 0:
	case 1, 2:
		o := &session.Open{Human: true}
		copy(o.ID[:], d.fixed(16))
		o.Site = d.string()
		o.Campaign = d.string()
		o.StartMs = d.varint()
		o.LastMs = d.varint()
		o.Seq = d.uint32()
		o.Pages = d.uint32()
		o.Landing = d.string()
		o.Exit = d.string()
		o.Referrer = d.string()
		if flag == 2 {
			o.Content = d.string()
			switch h := d.fixed(1)[0]; h {
			case 0, 1:
				o.Human = h == 1
			default:
				d.fail(fmt.Errorf("human flag %d", h))
			}
		}
		st.Open = o
	default:
		d.fail(fmt.Errorf("open flag %d", flag))
	}
	return st
}
