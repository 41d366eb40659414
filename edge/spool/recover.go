package spool

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// recover lists the segments, drops acknowledged ones, cuts corrupt tails
// and opens a fresh active segment after the last one.
func (s *Spool) recover() error {
	entries, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return fmt.Errorf("list spool dir %s: %w", s.cfg.Dir, err)
	}
	var ids []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok || e.IsDir() {
			continue
		}
		id, err := strconv.ParseUint(name, 16, 64)
		if err != nil {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	ack := s.readAck()
	var last uint64
	for _, id := range ids {
		last = id
		path := filepath.Join(s.cfg.Dir, segName(id))
		if id < ack.Seg {
			_ = os.Remove(path)
			continue
		}
		start := int64(0)
		if id == ack.Seg {
			start = ack.Off
		}
		size, n, err := s.scan(path, start)
		if err != nil {
			return err
		}
		if size == 0 || size <= start {
			// Nothing left to deliver in it.
			_ = os.Remove(path)
			continue
		}
		s.segs = append(s.segs, &segment{id: id, size: size})
		s.bytes.Add(size)
		s.records.Add(n)
	}
	if len(s.segs) > 0 {
		s.read = Pos{Seg: s.segs[0].id}
		if s.segs[0].id == ack.Seg {
			s.read.Off = ack.Off
			s.dead.Store(ack.Off)
		}
	}
	next := last + 1
	if ack.Seg >= next {
		next = ack.Seg + 1
	}
	act, err := s.createSegment(next, s.cfg.SegmentBytes)
	if err != nil {
		return err
	}
	s.segs = append(s.segs, act)
	if len(s.segs) == 1 {
		s.read = Pos{Seg: next}
	}
	if err := syncDir(s.cfg.Dir); err != nil {
		return err
	}
	return nil
}

// scan validates the records of a segment from its start and truncates it
// after the last good one. It returns the good size and how many records
// lie at or after from.
func (s *Spool) scan(path string, from int64) (int64, int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("open spool segment %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("stat spool segment %s: %w", path, err)
	}
	fileSize := st.Size()
	var off, n int64
	hdr := make([]byte, headerLen)
	payload := make([]byte, 0, 4096)
	for off < fileSize {
		if _, err := f.ReadAt(hdr, off); err != nil {
			break // a header cut short
		}
		l := int64(binary.LittleEndian.Uint32(hdr))
		if l == 0 || l > MaxRecord || off+headerLen+l > fileSize {
			break
		}
		payload = slices.Grow(payload[:0], int(l))[:l]
		if _, err := f.ReadAt(payload, off+headerLen); err != nil {
			break
		}
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
			break
		}
		if off >= from {
			n++
		}
		off += headerLen + l
	}
	if off < fileSize {
		if !zeroFrom(f, off, fileSize) {
			s.corrupt.Add(1)
			s.cbytes.Add(uint64(fileSize - off))
		}
		if err := f.Truncate(off); err != nil {
			return 0, 0, fmt.Errorf("truncate corrupt tail of spool segment %s at %d: %w", path, off, err)
		}
		if err := f.Sync(); err != nil {
			return 0, 0, fmt.Errorf("sync spool segment %s: %w", path, err)
		}
	}
	return off, n, nil
}

// zeroFrom reports whether f holds only zero bytes from off to size: the
// unused rest of a preallocated segment.
func zeroFrom(f *os.File, off, size int64) bool {
	buf := make([]byte, 1<<20)
	for off < size {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		for _, c := range buf[:n] {
			if c != 0 {
				return false
			}
		}
		if err != nil {
			return false
		}
		off += int64(n)
	}
	return true
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open spool dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync spool dir %s: %w", dir, err)
	}
	return nil
}
