package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// ErrFull is returned by Append when the record would make the spool larger
// than Config.MaxBytes.
var ErrFull = errors.New("spool full")

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("spool closed")

// releaseChunk is how much of a written mapping is released from the
// process's resident memory at once; the bytes stay in the page cache, so
// RSS stays bounded while Kafka is down and the spool grows.
const releaseChunk = 4 << 20

// Append adds one record. It is safe for concurrent use and does not
// allocate or make a system call, except when a segment is full. When it
// returns nil the record is durable as Config.Sync says.
func (s *Spool) Append(payload []byte) error {
	if len(payload) == 0 || len(payload) > MaxRecord {
		return fmt.Errorf("spool record of %d bytes: want 1..%d", len(payload), MaxRecord)
	}
	n := int64(headerLen + len(payload))
	sum := crc32.Checksum(payload, castagnoli)
	s.mu.Lock()
	var act *segment
	for {
		if s.closed {
			s.mu.Unlock()
			return ErrClosed
		}
		if s.bytes.Load()-s.dead.Load()+n > s.cfg.MaxBytes {
			s.mu.Unlock()
			return ErrFull
		}
		act = s.segs[len(s.segs)-1]
		if act.size+n <= int64(len(act.mm)) {
			break
		}
		if s.creating {
			// The next segment is being created ahead: wait for it
			// rather than create the same file.
			s.cond.Wait()
			continue
		}
		// Full: seal it and start the next, large enough for this record.
		if err := s.roll(n); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	w := act.mm[act.size : act.size+n]
	binary.LittleEndian.PutUint32(w, uint32(len(payload)))
	binary.LittleEndian.PutUint32(w[4:], sum)
	copy(w[headerLen:], payload)
	act.size += n
	if act.size-act.released >= releaseChunk {
		end := act.size &^ (releaseChunk - 1)
		_ = madviseDontNeed(act.mm[act.released:end])
		act.released = end
	}
	if s.needAhead(act) {
		s.kickAhead()
	}
	s.bytes.Add(n)
	s.records.Add(1)
	s.written += uint64(n)
	mine := s.written
	if s.cfg.Sync == SyncAlways {
		select {
		case s.kick <- struct{}{}:
		default:
		}
		// Close runs a last fsync before it returns, so this ends.
		for s.synced < mine {
			s.cond.Wait()
		}
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return nil
}

// roll seals the active segment and starts the next, large enough for a
// record of n bytes: the one created ahead when there is one and it is
// large enough; s.mu is held and no creation ahead is under way.
func (s *Spool) roll(n int64) error {
	act := s.segs[len(s.segs)-1]
	next := s.next
	s.next = nil
	if next != nil && int64(len(next.mm)) < n {
		next.discard(s.cfg.Dir)
		next = nil
	}
	if next == nil {
		var err error
		if next, err = s.createSegment(act.id+1, max(s.cfg.SegmentBytes, n)); err != nil {
			return err
		}
	}
	// aheadLoop ends the mapping and cuts the file; the sync loop fsyncs
	// and closes it (an fsync also writes back pages stored through a
	// mapping that is still there).
	s.sealed = append(s.sealed, act)
	if act.f != nil {
		s.unsynced = append(s.unsynced, act.f)
		act.f = nil
	}
	s.segs = append(s.segs, next)
	s.kickAhead()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}
