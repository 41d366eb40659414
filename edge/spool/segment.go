package spool

import (
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"syscall"
)

// MaxRecord is the largest payload a record may have.
const MaxRecord = 1 << 20

const headerLen = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

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

func segName(id uint64) string { return fmt.Sprintf("%016x.seg", id) }

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
