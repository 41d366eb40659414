package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

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
