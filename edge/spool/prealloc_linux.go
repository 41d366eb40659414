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
