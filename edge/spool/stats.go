package spool

// Stats are the spool's counters and levels.
type Stats struct {
	Bytes        int64  // bytes of the records in all segment files (the active file is allocated whole)
	Records      int64  // records appended and not yet acknowledged
	Segments     int    // segment files
	CorruptTails uint64 // segments whose tail was cut at recovery or read
	CorruptBytes uint64 // bytes cut off with them
	SyncErrors   uint64 // failed fsyncs
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
