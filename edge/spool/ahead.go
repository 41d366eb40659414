package spool

import (
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Work done ahead of the writer, off Append's path, by one goroutine of
// the spool's (aheadLoop):
//
//   - the next segment is created (allocated and mapped) while the active
//     one fills, so sealing a full segment is a swap under the lock instead
//     of a 2-8 ms stall of every appender (the file's allocation, mapping,
//     and the old mapping's end and truncation);
//   - the pages of the active segment ahead of the write position are
//     faulted in (MADV_POPULATE_WRITE), so an append does not pay the first
//     store into a page (5-8 µs a page on ext4, once every ≈13 hits);
//   - the mappings of sealed segments are ended and their files cut to
//     their records.
//
// The disk holds at most one segment more than before: the next one,
// allocated whole and empty. Recovery removes an empty segment, so one
// left by a crash costs nothing.

// populateAhead is how far ahead of the write position the active
// segment's pages are faulted in; more is asked for when less than half of
// it is left.
const populateAhead = 1 << 20

// retryCreate is how long after a failed creation of the next segment
// (disk full) the goroutine tries again; Append creates it itself when it
// needs it before then, and reports that error.
const retryCreate = time.Second

// kickAhead wakes aheadLoop; s.mu is held.
func (s *Spool) kickAhead() {
	select {
	case s.aheadKick <- struct{}{}:
	default:
	}
}

// needAhead reports whether aheadLoop has work for the active segment act;
// s.mu is held.
func (s *Spool) needAhead(act *segment) bool {
	return (s.next == nil && !s.creating) ||
		(s.populate && act.populated-act.size < populateAhead/2 && act.populated < int64(len(act.mm)))
}

func (s *Spool) aheadLoop() {
	defer close(s.aheadDone)
	var failedAt time.Time
	for {
		select {
		case <-s.aheadStop:
			return
		case <-s.aheadKick:
		}
		s.unmapSealed()
		s.populateActive()
		if time.Since(failedAt) >= retryCreate && !s.createNext() {
			failedAt = time.Now()
		}
	}
}

// unmapSealed ends the mappings of segments roll sealed and cuts their
// files to the records they hold. Only this goroutine (and Close or
// abandon, once it stopped) ends mappings, so populateActive never touches
// an ended one.
func (s *Spool) unmapSealed() {
	s.mu.Lock()
	sealed := s.sealed
	s.sealed = nil
	s.mu.Unlock()
	for _, seg := range sealed {
		_ = syscall.Munmap(seg.mm)
		// A failed truncate (or a crash before it) leaves zeros after the
		// records, which recovery reads as unused space. The file may be
		// gone already: delivered and deleted.
		_ = os.Truncate(filepath.Join(s.cfg.Dir, segName(seg.id)), seg.size)
	}
}

// populateActive faults in the active segment's pages up to populateAhead
// past the write position.
func (s *Spool) populateActive() {
	s.mu.Lock()
	act := s.segs[len(s.segs)-1]
	mm := act.mm
	from := max(act.populated, act.size&^(pageSize-1))
	to := min(act.size+populateAhead, int64(len(mm)))
	ok := s.populate && !s.closed && mm != nil && to > from
	s.mu.Unlock()
	if !ok {
		return
	}
	supported := populateWrite(mm[from:to])
	s.mu.Lock()
	if !supported {
		s.populate = false
	}
	act.populated = max(act.populated, to)
	s.mu.Unlock()
}

const pageSize = 4096

// createNext creates the next segment if there is none; false when that
// failed.
func (s *Spool) createNext() bool {
	s.mu.Lock()
	if s.closed || s.next != nil {
		s.mu.Unlock()
		return true
	}
	id := s.segs[len(s.segs)-1].id + 1
	s.creating = true // Append waits for it rather than create the same file
	s.mu.Unlock()
	seg, err := s.createSegment(id, s.cfg.SegmentBytes)
	s.mu.Lock()
	s.creating = false
	if err == nil {
		s.next = seg
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	return err == nil
}

// stopAhead stops aheadLoop and ends what it left: the mappings of sealed
// segments and of the next segment, whose file is removed when remove is
// set (Close; a killed process, which abandon plays, leaves it).
func (s *Spool) stopAhead(remove bool) {
	close(s.aheadStop)
	<-s.aheadDone
	s.unmapSealed()
	s.mu.Lock()
	next := s.next
	s.next = nil
	s.mu.Unlock()
	switch {
	case next == nil:
	case remove:
		next.discard(s.cfg.Dir)
	default:
		_ = syscall.Munmap(next.mm)
		_ = next.f.Close()
	}
}

// discard ends the mapping of a segment never written to and removes its
// file.
func (seg *segment) discard(dir string) {
	_ = syscall.Munmap(seg.mm)
	seg.mm = nil
	_ = seg.f.Close()
	_ = os.Remove(filepath.Join(dir, segName(seg.id)))
}
