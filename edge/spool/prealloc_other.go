//go:build !linux

package spool

import "os"

func preallocate(f *os.File, size int64) error { return writeZeros(f, size) }

func madviseDontNeed([]byte) error { return nil }

func populateWrite([]byte) bool { return false }
