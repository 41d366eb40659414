package spool

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"
)

// AckPersistInterval bounds how often Ack writes the ack position (a small
// file written and renamed); a crash replays at most this much delivery.
const AckPersistInterval = 100 * time.Millisecond

// Ack acknowledges delivery of every record before pos (a position Read
// returned) and of n records in all. Segments wholly acknowledged are
// deleted; the position is persisted at most every AckPersistInterval and on
// Close, so after a crash up to that much of acknowledged records can be
// read again (at-least-once: consumers deduplicate).
func (s *Spool) Ack(pos Pos, n int) error {
	s.records.Add(-int64(n))
	s.mu.Lock()
	var drop []*segment
	for len(s.segs) > 1 && s.segs[0].id < pos.Seg {
		drop = append(drop, s.segs[0])
		s.segs = s.segs[1:]
	}
	s.mu.Unlock()
	for _, seg := range drop {
		if s.rf != nil && s.rfSeg == seg.id {
			_ = s.rf.Close()
			s.rf = nil
		}
		if err := os.Remove(filepath.Join(s.cfg.Dir, segName(seg.id))); err != nil {
			return fmt.Errorf("delete delivered spool segment %s: %w", segName(seg.id), err)
		}
		s.bytes.Add(-seg.size)
	}
	s.dead.Store(pos.Off)
	s.ackPos = pos
	if len(drop) > 0 || time.Since(s.lastAck) >= AckPersistInterval {
		return s.writeAck()
	}
	return nil
}

func (s *Spool) writeAck() error {
	s.lastAck = time.Now()
	b := s.ackBuf[:0]
	b = binary.LittleEndian.AppendUint64(b, s.ackPos.Seg)
	b = binary.LittleEndian.AppendUint64(b, uint64(s.ackPos.Off))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	s.ackBuf = b
	tmp := filepath.Join(s.cfg.Dir, "ack.tmp")
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return fmt.Errorf("write spool ack position: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.cfg.Dir, "ack")); err != nil {
		return fmt.Errorf("write spool ack position: %w", err)
	}
	return nil
}

// readAck returns the persisted ack position, or the zero Pos when there is
// none or it is damaged (then everything is delivered again).
func (s *Spool) readAck() Pos {
	b, err := os.ReadFile(filepath.Join(s.cfg.Dir, "ack"))
	if err != nil || len(b) != 20 || crc32.Checksum(b[:16], castagnoli) != binary.LittleEndian.Uint32(b[16:]) {
		return Pos{}
	}
	p := Pos{Seg: binary.LittleEndian.Uint64(b), Off: int64(binary.LittleEndian.Uint64(b[8:]))}
	s.ackPos = p
	return p
}
