package audit

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The lanes of a partition are snapshotted with its session state as
//
//	version byte (blobVersion), varint sinceMs, uvarint n, then n lanes:
//	  string node, varint boot, uvarint first, uvarint max, varint newest,
//	  uvarint g, then g gaps: uvarint from, uvarint to-from, varint at
//
// with strings as uvarint length and bytes.
const blobVersion = 1

// AppendState appends the encoding of p's lanes (not its pending figures,
// which are written with the same snapshot) to b.
func (p *Partition) AppendState(b []byte) []byte {
	b = append(b, blobVersion)
	b = binary.AppendVarint(b, p.sinceMs)
	b = binary.AppendUvarint(b, uint64(len(p.lanes)))
	for k, l := range p.lanes {
		b = binary.AppendUvarint(b, uint64(len(k.node)))
		b = append(b, k.node...)
		b = binary.AppendVarint(b, k.boot)
		b = binary.AppendUvarint(b, l.first)
		b = binary.AppendUvarint(b, l.max)
		b = binary.AppendVarint(b, l.newestMs)
		b = binary.AppendUvarint(b, uint64(len(l.gaps)))
		for _, g := range l.gaps {
			b = binary.AppendUvarint(b, g.From)
			b = binary.AppendUvarint(b, g.To-g.From)
			b = binary.AppendVarint(b, g.AtMs)
		}
	}
	return b
}

var errShort = errors.New("truncated audit state")

// LoadPartition decodes the audit state of partition id snapshotted by
// AppendState; nothing is pending, and hits from offset from on are counted.
func LoadPartition(id int, from int64, b []byte) (*Partition, error) {
	p := NewPartition(id)
	p.from = from
	if len(b) == 0 || b[0] != blobVersion {
		return nil, fmt.Errorf("audit state: unknown version")
	}
	d := decoder{b: b[1:]}
	p.sinceMs = d.varint()
	n := d.uvarint()
	for i := uint64(0); i < n && d.err == nil; i++ {
		node := d.string()
		k := laneKey{node: node, boot: d.varint()}
		l := &lane{first: d.uvarint(), max: d.uvarint(), newestMs: d.varint()}
		g := d.uvarint()
		if g > MaxGaps || d.err != nil {
			return nil, fmt.Errorf("audit state: lane %s/%d: %d gaps", k.node, k.boot, g)
		}
		for j := uint64(0); j < g; j++ {
			from := d.uvarint()
			l.gaps = append(l.gaps, Gap{From: from, To: from + d.uvarint(), AtMs: d.varint()})
		}
		p.lanes[k] = l
	}
	if d.err != nil {
		return nil, fmt.Errorf("audit state: %w", d.err)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("audit state: %d bytes after the lanes", len(d.b))
	}
	return p, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errShort
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
