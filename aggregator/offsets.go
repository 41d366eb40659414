package aggregator

import (
	"time"

	"github.com/segmentio/kafka-go"
)

// offsets follows the messages of the events topic from their fetch to
// their commit. A message's offset may be committed only once every count
// of its event is durable in Redis: its records, written at every flush,
// and its details (breakdowns), written at full flushes only; and Redis
// makes a write durable up to a second or two after acknowledging it, so a
// full flush's messages wait CommitDelay more. Order is kept throughout:
// messages are committed in the order they were applied.
//
// Run calls applied after each chunk of events it applied, flushed after
// each successful flush (a failed one changes nothing: its messages stay
// pending for the next), due before committing and drop once it did, and
// reset when its state went stale.
type offsets struct {
	pending []kafka.Message // applied, not yet flushed
	waiting []kafka.Message // records flushed, details not yet
	batches []flushedBatch  // wholly flushed, waiting for CommitDelay
}

// flushedBatch is messages whose events were written to Redis at a time,
// by the aggregator's writes up to the count writes.
type flushedBatch struct {
	at     time.Time
	writes uint64
	msgs   []kafka.Message
}

// applied adds messages whose events were applied to the held days.
func (o *offsets) applied(msgs []kafka.Message) {
	o.pending = append(o.pending, msgs...)
}

// unflushed is the number of messages applied since the last flush.
func (o *offsets) unflushed() int { return len(o.pending) }

// flushed records a flush that succeeded at now, the aggregator's writes
// having reached the count writes: the records of every pending message
// are in Redis; with full (a detail flush), so is every detail of them and
// of those that waited for it, which then form one batch flushed at now.
func (o *offsets) flushed(full bool, now time.Time, writes uint64) {
	o.waiting = append(o.waiting, o.pending...)
	o.pending = nil
	if full && len(o.waiting) > 0 {
		o.batches = append(o.batches, flushedBatch{at: now, writes: writes, msgs: o.waiting})
		o.waiting = nil
	}
}

// due returns, in order, the messages of the n batches flushed at least
// delay before now, and the write count of the last of them; they stay
// until drop(n) says the caller committed them.
func (o *offsets) due(now time.Time, delay time.Duration) (msgs []kafka.Message, n int, writes uint64) {
	cutoff := now.Add(-delay)
	for _, b := range o.batches {
		if b.at.After(cutoff) {
			break
		}
		msgs = append(msgs, b.msgs...)
		writes = b.writes
		n++
	}
	return msgs, n, writes
}

// drop forgets the first n batches: their messages were committed.
func (o *offsets) drop(n int) {
	o.batches = append(o.batches[:0], o.batches[n:]...)
}

// reset forgets every message not committed yet: their events will be
// read again from the committed offsets.
func (o *offsets) reset() {
	o.pending = nil
	o.waiting = nil
	o.batches = o.batches[:0]
}
