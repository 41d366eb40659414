package edge

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
)

// lanes numbers the edge's hits per partition of the hits topic: the edge
// chooses each hit's partition when it records it (the same hash of the
// partition key the publisher would use), and hits of one partition get the
// sequence numbers 1, 2, 3, ... of this node and boot, without gaps. The
// processor of that partition then sees every number of the lane and can
// tell a hit that never arrived from one that was counted: the completeness
// audit. Lane numbers are partition + 1; 0 means the partition count was
// not known yet (first start with Kafka unreachable), and such hits are
// numbered by the node-wide counter, as before lanes existed.
//
// The partition count is kept in the spool folder, so an edge restarted
// while Kafka is down still numbers by lane.
type lanes struct {
	set  atomic.Pointer[laneSet]
	mu   sync.Mutex // serialises resize
	all  []*counter // every lane's counter ever made, by partition: never dropped
	file string
}

// laneSet is the counters of n partitions. A resize makes a new set that
// shares the counters of the partitions both have, so a handler holding the
// old set never hands out a number twice.
type laneSet struct {
	seq []*counter
}

// counter is one lane's number, alone on its cache line: the lanes of a
// batch of requests are counted on both cores at once.
type counter struct {
	atomic.Uint64
	_ [56]byte
}

// partitionsFile is the name of the partition count file in the spool folder.
const partitionsFile = "partitions"

// newLanes returns lanes for the spool folder dir, sized by the partition
// count stored there (none: unknown until the publisher learns it).
func newLanes(dir string) (*lanes, error) {
	l := &lanes{file: filepath.Join(dir, partitionsFile)}
	l.set.Store(&laneSet{})
	b, err := os.ReadFile(l.file)
	if os.IsNotExist(err) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the stored partition count: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 || n > maxLanes {
		return nil, fmt.Errorf("stored partition count %s: %q is not a count of 0 to %d", l.file, b, maxLanes)
	}
	l.resize(n, false)
	return l, nil
}

// maxLanes bounds the partitions a lane number can name (it shares the
// spool header's time field, see laneHeader).
const maxLanes = 1<<16 - 2

// next returns the lane of a hit with partition key key, and its number in
// that lane; lane 0 and seq 0 when the partition count is unknown.
func (l *lanes) next(key []byte) (lane uint32, seq uint64) {
	set := l.set.Load()
	if len(set.seq) == 0 {
		return 0, 0
	}
	part := kafkaconn.PartitionOf(key, len(set.seq))
	return uint32(part) + 1, set.seq[part].Add(1)
}

// count is the partition count lanes number by, 0 when unknown.
func (l *lanes) count() int { return len(l.set.Load().seq) }

// resize sets the partition count (the publisher calls it with each count it
// learns; only a change does anything) and, when store is set, keeps it in
// the spool folder.
func (l *lanes) resize(n int, store bool) error {
	if n > maxLanes {
		n = maxLanes
	}
	if n == len(l.set.Load().seq) {
		return nil // the publisher calls with every batch: no lock then
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if n == len(l.set.Load().seq) {
		return nil
	}
	// A count that shrinks (a metadata answer listing fewer partitions)
	// and grows back must not number a lane from 1 again: the counters
	// are kept.
	for len(l.all) < n {
		l.all = append(l.all, new(counter))
	}
	l.set.Store(&laneSet{seq: l.all[:n:n]})
	if !store {
		return nil
	}
	tmp := l.file + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(n)+"\n"), 0o644); err != nil {
		return fmt.Errorf("store the partition count: %w", err)
	}
	if err := os.Rename(tmp, l.file); err != nil {
		return fmt.Errorf("store the partition count: %w", err)
	}
	return nil
}

// A spooled hit's header is its 8-byte partition key and an 8-byte word
// holding the receive time in Unix milliseconds (low 48 bits) and its lane
// (high 16 bits; 0 in hits spooled before lanes existed, which the
// publisher partitions by key).

// laneHeader is the header word of a hit received at ms in lane.
func laneHeader(ms int64, lane uint32) uint64 {
	return uint64(ms)&(1<<48-1) | uint64(lane)<<48
}

// spooledTime is the receive time of a spooled hit, Unix milliseconds.
func spooledTime(rec []byte) int64 {
	return int64(binary.BigEndian.Uint64(rec[keyLen:headerLen]) & (1<<48 - 1))
}

// spooledLane is the lane of a spooled hit, 0 when it has none.
func spooledLane(rec []byte) uint32 {
	return uint32(binary.BigEndian.Uint64(rec[keyLen:headerLen]) >> 48)
}
