package spool

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

// Pos is a position in the spool: a segment and a byte offset in it.
type Pos struct {
	Seg uint64
	Off int64
}

// Notify returns a channel that receives after appends, so a consumer can
// wait for records instead of polling.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Read returns up to max records from the read position on, at most
// maxBytes of payload together (but always at least one record if one is
// there), and the position after the last. The slices are valid until the
// next Read. Reading does not acknowledge: Ack does. An empty result means
// the spool holds nothing more to read now.
func (s *Spool) Read(max, maxBytes int) ([][]byte, Pos, error) {
	s.recs = s.recs[:0]
	buf := s.rbuf[:0]
	for len(s.recs) < max {
		s.mu.Lock()
		seg, next := s.segmentLocked(s.read.Seg)
		var end int64
		if seg != nil {
			end = seg.size
		}
		s.mu.Unlock()
		if seg == nil {
			break
		}
		if s.read.Off >= end {
			if next == nil {
				break // caught up with the writer
			}
			s.read = Pos{Seg: next.id}
			continue
		}
		if err := s.openRead(seg.id); err != nil {
			return s.recs, s.read, err
		}
		// Read whole records into the free part of buf.
		room := cap(buf) - len(buf)
		if room < headerLen+1 {
			break
		}
		want := min(end-s.read.Off, int64(room))
		chunk := buf[len(buf) : len(buf)+int(want)]
		if _, err := s.rf.ReadAt(chunk, s.read.Off); err != nil {
			return s.recs, s.read, fmt.Errorf("read spool segment %s at %d: %w", segName(seg.id), s.read.Off, err)
		}
		used, cut := 0, false
		for len(s.recs) < max {
			rest := chunk[used:]
			if len(rest) < headerLen {
				break
			}
			l := int(binary.LittleEndian.Uint32(rest))
			if l == 0 || l > MaxRecord {
				s.cutSegment(s.read.Off+int64(used), end)
				cut = true
				break
			}
			if len(rest) < headerLen+l {
				break
			}
			p := rest[headerLen : headerLen+l]
			if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(rest[4:]) {
				s.cutSegment(s.read.Off+int64(used), end)
				cut = true
				break
			}
			if len(s.recs) > 0 && len(buf)+used+headerLen+l > maxBytes {
				max = len(s.recs) // budget reached
				break
			}
			s.recs = append(s.recs, p)
			used += headerLen + l
		}
		buf = buf[:len(buf)+used]
		s.read.Off += int64(used)
		if cut {
			s.read.Off = end // nothing more of this segment is readable
			continue
		}
		if used == 0 {
			break // the next record does not fit in what is left of buf
		}
	}
	return s.recs, s.read, nil
}

// cutSegment counts a corrupt rest of a segment found while reading (a
// segment changed on disk after recovery).
func (s *Spool) cutSegment(at, end int64) {
	s.corrupt.Add(1)
	s.cbytes.Add(uint64(end - at))
}

// segmentLocked returns the segment id and the one after it, if any.
func (s *Spool) segmentLocked(id uint64) (*segment, *segment) {
	for i, seg := range s.segs {
		if seg.id == id {
			if i+1 < len(s.segs) {
				return seg, s.segs[i+1]
			}
			return seg, nil
		}
		if seg.id > id {
			// The read position's segment is gone (never created after a
			// cut); continue from the next one.
			s.read = Pos{Seg: seg.id}
			return s.segmentLocked(seg.id)
		}
	}
	return nil, nil
}

func (s *Spool) openRead(id uint64) error {
	if s.rf != nil && s.rfSeg == id {
		return nil
	}
	if s.rf != nil {
		_ = s.rf.Close()
		s.rf = nil
	}
	f, err := os.Open(filepath.Join(s.cfg.Dir, segName(id)))
	if err != nil {
		return fmt.Errorf("open spool segment %s for reading: %w", segName(id), err)
	}
	s.rf, s.rfSeg = f, id
	return nil
}
