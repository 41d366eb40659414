// Package spool is the edge's local disk spool: an append-only log of
// records in segment files, read back in order by one consumer that
// acknowledges what it has delivered. It is what lets the edge answer a
// pixel only once the hit is safe, whatever Kafka does.
//
// # Format
//
// A spool is a folder of segment files named by a hexadecimal sequence
// number (0000000000000001.seg, ...). Each record is
//
//	length  uint32 little-endian, 1..MaxRecord
//	crc     uint32 little-endian, CRC-32C (Castagnoli) of the payload
//	payload length bytes
//
// A file named ack holds the position (segment, offset) up to which the
// consumer acknowledged delivery, written by rename so it is never torn.
// Segments wholly before it are deleted.
//
// # Durability
//
// The active segment is created at its full size (Config.SegmentBytes, its
// blocks allocated up front so a full disk fails the segment's creation, not
// a store into it) and mapped into memory shared with the file (mmap
// MAP_SHARED). Append copies the record into the mapping under a short lock:
// no system call per record, and (ahead.go) neither a page fault nor the
// creation of the next segment on its path, both done ahead by a goroutine. A byte stored into a shared file mapping is in
// the kernel's page cache at once, exactly as if write(2) had put it there,
// so it survives the process as a write(2) would. What that guarantees
// depends on Config.Sync:
//
//   - SyncWrite (default): the record survives the process dying in any way
//     (SIGTERM, SIGKILL, panic, OOM kill), because it is in the kernel's page
//     cache, which belongs to the file and not to the process. A kernel crash
//     or power loss can lose what was appended since the last fsync, which
//     runs every Config.FsyncInterval (default 1 s) and when a segment is
//     sealed. (On Linux an fsync of a file also writes back the pages
//     stored through a mapping of it.)
//   - SyncAlways: Append returns only after an fsync covering the record
//     completed (group commit: one fsync covers every record appended while
//     the previous one ran). The record survives power loss too, at the cost
//     of the fsync latency on every append (milliseconds on most disks).
//
// # Recovery
//
// Open scans every segment from the acknowledged position on. A zero length
// followed only by zeros to the end of the file is the segment's unused,
// preallocated space: the file is cut there and nothing is counted. Any
// other record whose length is impossible, which runs past the end of its
// file, or whose checksum does not match ends that segment: the file is
// truncated there, and the bytes dropped are counted (Stats.CorruptTails,
// Stats.CorruptBytes). Records are copied in order under one lock, so a torn
// record (the process died during its copy, before its Append returned) is
// always the last one written. Recovery never fails because of what it finds
// in a segment, so a corrupt spool cannot make the edge crash-loop.
//
// # Bounds
//
// The records not yet acknowledged never exceed Config.MaxBytes (the files
// hold at most two segments more: the active one, allocated whole, and the
// next, created ahead of need): an
// Append that would pass it fails with ErrFull and changes nothing. Ready
// reports false from Config.HighWater on, so a load balancer can send
// traffic elsewhere before that happens.
package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// SyncMode says when appended records are fsynced; see the package comment.
type SyncMode int

const (
	// SyncWrite fsyncs every FsyncInterval and when a segment is sealed.
	SyncWrite SyncMode = iota
	// SyncAlways makes Append wait for an fsync covering its record.
	SyncAlways
)

// ParseSyncMode maps "write" and "always" to their SyncMode.
func ParseSyncMode(s string) (SyncMode, error) {
	switch s {
	case "write":
		return SyncWrite, nil
	case "always":
		return SyncAlways, nil
	}
	return 0, fmt.Errorf("unknown spool sync mode %q: want write or always", s)
}

func (m SyncMode) String() string {
	if m == SyncAlways {
		return "always"
	}
	return "write"
}

// AckPersistInterval bounds how often Ack writes the ack position (a small
// file written and renamed); a crash replays at most this much delivery.
const AckPersistInterval = 100 * time.Millisecond

// MaxRecord is the largest payload a record may have.
const MaxRecord = 1 << 20

const headerLen = 8

// ErrFull is returned by Append when the record would make the spool larger
// than Config.MaxBytes.
var ErrFull = errors.New("spool full")

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("spool closed")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Config configures a spool.
type Config struct {
	// Dir is the spool folder, created if missing. Only one process may use
	// it at a time (it holds an flock on Dir/lock). Required.
	Dir string
	// SegmentBytes is the size at which the active segment is sealed and a
	// new one started. Default 64 MiB.
	SegmentBytes int64
	// MaxBytes bounds the bytes not yet acknowledged; the files on disk
	// hold at most two segments more (the active one and the next, both
	// allocated whole; the acknowledged start of the oldest segment is
	// freed when the whole segment is). Default 1 GiB.
	MaxBytes int64
	// HighWater is the fraction of MaxBytes from which Ready reports false.
	// Default 0.8.
	HighWater float64
	// Sync is the durability mode. Default SyncWrite.
	Sync SyncMode
	// FsyncInterval is how often SyncWrite fsyncs; 0 means only when a
	// segment is sealed and on Close. Default 1 s.
	FsyncInterval time.Duration
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{SegmentBytes: 64 << 20, MaxBytes: 1 << 30, HighWater: 0.8, FsyncInterval: time.Second}
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("spool dir is required"))
	}
	if c.SegmentBytes < 4096 {
		errs = append(errs, fmt.Errorf("spool segment size must be at least 4096 bytes, got %d", c.SegmentBytes))
	}
	if c.MaxBytes < c.SegmentBytes {
		errs = append(errs, fmt.Errorf("spool max size (%d bytes) must be at least one segment (%d bytes)", c.MaxBytes, c.SegmentBytes))
	}
	if c.HighWater <= 0 || c.HighWater > 1 {
		errs = append(errs, fmt.Errorf("spool high-water mark must be in (0, 1], got %v", c.HighWater))
	}
	if c.Sync != SyncWrite && c.Sync != SyncAlways {
		errs = append(errs, fmt.Errorf("unknown spool sync mode %d", c.Sync))
	}
	if c.FsyncInterval < 0 {
		errs = append(errs, errors.New("spool fsync interval must not be negative"))
	}
	return errors.Join(errs...)
}

// Pos is a position in the spool: a segment and a byte offset in it.
type Pos struct {
	Seg uint64
	Off int64
}

// Stats are the spool's counters and levels.
type Stats struct {
	Bytes        int64  // bytes of the records in all segment files (the active file is allocated whole)
	Records      int64  // records appended and not yet acknowledged
	Segments     int    // segment files
	CorruptTails uint64 // segments whose tail was cut at recovery or read
	CorruptBytes uint64 // bytes cut off with them
	SyncErrors   uint64 // failed fsyncs
}

type segment struct {
	id   uint64
	size int64 // bytes of whole records
	f    *os.File
	// The active segment only: the file mapped shared, its whole
	// preallocated length, and how much of its start was released from the
	// process's memory (madvise) after being written.
	mm       []byte
	released int64
	// populated: how much of the mapping's start was faulted in ahead of
	// the writer (ahead.go).
	populated int64
}

// releaseChunk is how much of a written mapping is released from the
// process's resident memory at once; the bytes stay in the page cache, so
// RSS stays bounded while Kafka is down and the spool grows.
const releaseChunk = 4 << 20

// Spool is an open spool. Append may be called from many goroutines; Read
// and Ack from one consumer at a time.
type Spool struct {
	cfg  Config
	lock *os.File

	mu       sync.Mutex
	cond     *sync.Cond // signalled when synced advances
	segs     []*segment // oldest first; the last is the active one
	written  uint64     // bytes appended since Open (a logical clock for SyncAlways)
	synced   uint64     // written value covered by the last completed fsync
	unsynced []*os.File
	closed   bool
	syncing  bool

	// Ahead of the writer (ahead.go).
	next      *segment   // the segment after the active one, created ahead
	creating  bool       // aheadLoop is creating next
	sealed    []*segment // sealed segments whose mapping aheadLoop ends
	populate  bool       // MADV_POPULATE_WRITE works here
	aheadKick chan struct{}
	aheadStop chan struct{}
	aheadDone chan struct{}

	bytes   atomic.Int64 // size of the segment files
	dead    atomic.Int64 // acknowledged bytes at the start of the oldest one
	records atomic.Int64
	corrupt atomic.Uint64
	cbytes  atomic.Uint64
	syncErr atomic.Uint64
	notify  chan struct{}

	// Consumer side.
	read    Pos
	rf      *os.File // open segment being read (its own descriptor)
	rfSeg   uint64
	rbuf    []byte
	recs    [][]byte
	ackPos  Pos
	lastAck time.Time
	ackBuf  []byte

	stop chan struct{}
	done chan struct{}
	kick chan struct{}
}

// Open opens or creates the spool in cfg.Dir and recovers what it holds.
func Open(cfg Config) (*Spool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("create spool dir %s: %w", cfg.Dir, err)
	}
	lock, err := os.OpenFile(filepath.Join(cfg.Dir, "lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open spool lock in %s: %w", cfg.Dir, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("lock spool dir %s (another edge uses it?): %w", cfg.Dir, err)
	}
	s := &Spool{
		cfg:    cfg,
		lock:   lock,
		notify: make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		kick:   make(chan struct{}, 1),
		rbuf:   make([]byte, MaxRecord+headerLen),

		populate:  true,
		aheadKick: make(chan struct{}, 1),
		aheadStop: make(chan struct{}),
		aheadDone: make(chan struct{}),
	}
	s.cond = sync.NewCond(&s.mu)
	if err := s.recover(); err != nil {
		_ = lock.Close()
		return nil, err
	}
	go s.syncLoop()
	go s.aheadLoop()
	s.kickAhead()
	return s, nil
}

func segName(id uint64) string { return fmt.Sprintf("%016x.seg", id) }

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

// createSegment creates segment id with size bytes allocated on disk and
// maps it shared into memory.
func (s *Spool) createSegment(id uint64, size int64) (*segment, error) {
	path := filepath.Join(s.cfg.Dir, segName(id))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o640)
	if err != nil {
		return nil, fmt.Errorf("create spool segment %s: %w", segName(id), err)
	}
	fail := func(err error) (*segment, error) {
		_ = f.Close()
		_ = os.Remove(path)
		return nil, err
	}
	// Allocate the blocks now: a store into a mapped page whose block the
	// file system cannot allocate (disk full) would kill the process with
	// SIGBUS; here it is an error the caller counts.
	if err := preallocate(f, size); err != nil {
		return fail(fmt.Errorf("allocate %d bytes for spool segment %s: %w", size, segName(id), err))
	}
	mm, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return fail(fmt.Errorf("map spool segment %s: %w", segName(id), err))
	}
	return &segment{id: id, f: f, mm: mm}, nil
}

// unmap ends the active segment's mapping and cuts its file to the records
// it holds; s.mu is held.
func (seg *segment) unmap() {
	if seg.mm == nil {
		return
	}
	_ = syscall.Munmap(seg.mm)
	seg.mm = nil
	// A failed truncate leaves zeros after the records, which recovery
	// reads as unused space.
	_ = seg.f.Truncate(seg.size)
}

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

// syncLoop runs the fsyncs: back to back while SyncAlways appenders wait,
// every FsyncInterval otherwise, and for every sealed segment.
func (s *Spool) syncLoop() {
	defer close(s.done)
	var tick <-chan time.Time
	if s.cfg.Sync == SyncWrite && s.cfg.FsyncInterval > 0 {
		t := time.NewTicker(s.cfg.FsyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-s.stop:
			s.syncNow()
			return
		case <-s.kick:
		case <-tick:
		}
		s.syncNow()
	}
}

// syncNow fsyncs sealed segments and the active one, then wakes appenders
// whose records it covered.
func (s *Spool) syncNow() {
	s.mu.Lock()
	if s.syncing {
		s.mu.Unlock()
		return
	}
	s.syncing = true
	target := s.written
	sealed := s.unsynced
	s.unsynced = nil
	act := s.segs[len(s.segs)-1].f
	s.mu.Unlock()

	for _, f := range sealed {
		if err := f.Sync(); err != nil {
			s.syncErr.Add(1)
		}
		_ = f.Close()
	}
	if act != nil && target > 0 {
		if err := act.Sync(); err != nil {
			s.syncErr.Add(1)
		}
	}
	s.mu.Lock()
	s.syncing = false
	if target > s.synced {
		s.synced = target
	}
	s.cond.Broadcast()
	again := s.synced < s.written && s.cfg.Sync == SyncAlways
	s.mu.Unlock()
	if again {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
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

// Ready reports whether the spool is below its high-water mark.
func (s *Spool) Ready() bool {
	return float64(s.bytes.Load()-s.dead.Load()) < s.cfg.HighWater*float64(s.cfg.MaxBytes)
}

// Stats returns the spool's counters and levels.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	n := len(s.segs)
	s.mu.Unlock()
	return Stats{
		Bytes:        s.bytes.Load(),
		Records:      s.records.Load(),
		Segments:     n,
		CorruptTails: s.corrupt.Load(),
		CorruptBytes: s.cbytes.Load(),
		SyncErrors:   s.syncErr.Load(),
	}
}

// Close fsyncs and closes the spool; records not acknowledged stay for the
// next Open. Append fails with ErrClosed afterwards.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true // no append starts from here
	s.cond.Broadcast()
	s.mu.Unlock()
	s.stopAhead(true)
	s.mu.Lock()
	act := s.segs[len(s.segs)-1]
	act.unmap()
	s.mu.Unlock()
	close(s.stop)
	<-s.done // a last fsync, which also wakes SyncAlways appenders
	var errs []error
	if err := act.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close spool segment: %w", err))
	}
	if s.rf != nil {
		_ = s.rf.Close()
	}
	if err := s.writeAck(); err != nil {
		errs = append(errs, err)
	}
	_ = s.lock.Close()
	return errors.Join(errs...)
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

// abandon drops the spool the way a killed process does: no last fsync, no
// ack position written, descriptors closed by the kernel. Tests use it.
func (s *Spool) abandon() {
	s.mu.Lock()
	s.closed = true
	s.synced = s.written // appenders waiting would have died with the process
	s.cond.Broadcast()
	s.mu.Unlock()
	s.stopAhead(false)
	s.mu.Lock()
	act := s.segs[len(s.segs)-1]
	_ = syscall.Munmap(act.mm) // no truncate: the process would not have had the time
	act.mm = nil
	sealed := s.unsynced
	s.unsynced = nil
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	for _, f := range sealed {
		_ = f.Close()
	}
	_ = act.f.Close()
	if s.rf != nil {
		_ = s.rf.Close()
	}
	_ = s.lock.Close()
}

// writeZeros allocates size bytes of f by writing them, where the file
// system cannot preallocate.
func writeZeros(f *os.File, size int64) error {
	zeros := make([]byte, 1<<20)
	for off := int64(0); off < size; {
		n, err := f.WriteAt(zeros[:min(int64(len(zeros)), size-off)], off)
		if err != nil {
			return err
		}
		off += int64(n)
	}
	return nil
}
