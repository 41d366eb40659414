package spool

import "time"

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
