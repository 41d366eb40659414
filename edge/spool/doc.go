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
