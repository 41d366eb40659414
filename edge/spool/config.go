package spool

import (
	"errors"
	"fmt"
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
