package spool

import (
	"errors"
	"os"
	"syscall"
)

// preallocate gives f size bytes with their blocks allocated, so stores
// through a mapping never need a block the disk does not have.
func preallocate(f *os.File, size int64) error {
	err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) {
		return writeZeros(f, size)
	}
	return err
}

// madviseDontNeed drops written pages of a shared file mapping from the
// process's resident set; their contents stay in the file's page cache.
func madviseDontNeed(b []byte) error { return syscall.Madvise(b, syscall.MADV_DONTNEED) }

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14): fault the pages
// of a range in, writable, as a store into each would, without storing.
const madvPopulateWrite = 23

// populateWrite faults the pages of b in, writable; it reports false when
// the kernel does not support it.
func populateWrite(b []byte) bool {
	err := syscall.Madvise(b, madvPopulateWrite)
	return !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOSYS)
}
