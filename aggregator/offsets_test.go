package aggregator

import (
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// messages returns messages of partition 0 at the given offsets.
func messages(offs ...int64) []kafka.Message {
	out := make([]kafka.Message, len(offs))
	for i, o := range offs {
		out[i] = kafka.Message{Partition: 0, Offset: o}
	}
	return out
}

func offsetsOf(ms []kafka.Message) []int64 {
	var out []int64
	for _, m := range ms {
		out = append(out, m.Offset)
	}
	return out
}

// checkDue checks what o.due returns at now, and commits it (drop).
func checkDue(t *testing.T, o *offsets, now time.Time, delay time.Duration, want ...int64) {
	t.Helper()
	msgs, n, _ := o.due(now, delay)
	if got := offsetsOf(msgs); !slices.Equal(got, want) {
		t.Fatalf("due at %v: offsets %v, want %v", now.Format(time.TimeOnly), got, want)
	}
	o.drop(n)
}

var base = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// The offsets of a flush that wrote the records only (not the details) are
// not committed until a full flush wrote their details too, however long
// ago the records were written.
func TestOffsetsWaitForAFullFlush(t *testing.T) {
	t.Parallel()
	const delay = 5 * time.Second
	var o offsets
	o.applied(messages(1, 2))
	o.flushed(false, base, 0)
	if o.unflushed() != 0 {
		t.Fatalf("%d messages unflushed after a flush", o.unflushed())
	}
	checkDue(t, &o, base.Add(time.Hour), delay)
	o.applied(messages(3))
	o.flushed(false, base.Add(time.Second), 0)
	checkDue(t, &o, base.Add(time.Hour), delay)
	// The full flush carries the details of all three.
	o.applied(messages(4))
	full := base.Add(2 * time.Hour)
	o.flushed(true, full, 0)
	checkDue(t, &o, full.Add(delay), delay, 1, 2, 3, 4)
}

// A full flush's messages are committed only once CommitDelay has passed
// since that flush (Redis may lose acknowledged writes for about a second
// or two), and once only.
func TestOffsetsWaitForCommitDelay(t *testing.T) {
	t.Parallel()
	const delay = 5 * time.Second
	var o offsets
	o.applied(messages(10, 11))
	o.flushed(true, base, 0)
	checkDue(t, &o, base, delay)
	checkDue(t, &o, base.Add(delay-time.Nanosecond), delay)
	checkDue(t, &o, base.Add(delay), delay, 10, 11)
	checkDue(t, &o, base.Add(time.Hour), delay)
	// With no delay, a full flush's messages are due at once.
	o.applied(messages(12))
	o.flushed(true, base.Add(time.Hour), 0)
	checkDue(t, &o, base.Add(time.Hour), 0, 12)
}

// A failed flush (Run calls no flushed) keeps its messages pending: the
// next flush that succeeds carries them, before the newer ones.
func TestOffsetsFailedFlushKeepsPending(t *testing.T) {
	t.Parallel()
	var o offsets
	o.applied(messages(1, 2))
	// The flush failed: nothing recorded.
	o.applied(messages(3))
	if o.unflushed() != 3 {
		t.Fatalf("%d messages unflushed, want 3", o.unflushed())
	}
	checkDue(t, &o, base.Add(time.Hour), 0)
	o.flushed(true, base, 0)
	checkDue(t, &o, base, 0, 1, 2, 3)
}

// A reset (the aggregator's copy went stale) drops every message not
// committed yet, pending, waiting for details and waiting for the delay;
// they are read again from the committed offsets.
func TestOffsetsResetDropsUncommitted(t *testing.T) {
	t.Parallel()
	const delay = 5 * time.Second
	var o offsets
	o.applied(messages(1))
	o.flushed(true, base, 0)
	checkDue(t, &o, base.Add(delay), delay, 1) // committed before the reset
	o.applied(messages(2))
	o.flushed(true, base.Add(time.Second), 0) // waits for the delay
	o.applied(messages(3))
	o.flushed(false, base.Add(2*time.Second), 0) // waits for details
	o.applied(messages(4))                       // pending
	o.reset()
	if o.unflushed() != 0 {
		t.Fatalf("%d messages unflushed after a reset", o.unflushed())
	}
	o.flushed(true, base.Add(3*time.Second), 0)
	checkDue(t, &o, base.Add(time.Hour), delay)
	// What comes after the reset is committed as usual.
	o.applied(messages(2, 3, 4))
	o.flushed(true, base.Add(4*time.Second), 0)
	checkDue(t, &o, base.Add(time.Hour), delay, 2, 3, 4)
}

// Messages are committed in the order they were applied, across flushes
// and batches, and a batch not due yet holds back every later one.
func TestOffsetsKeepOrder(t *testing.T) {
	t.Parallel()
	const delay = 5 * time.Second
	var o offsets
	o.applied(messages(1, 2))
	o.flushed(false, base, 0)
	o.applied(messages(3))
	o.flushed(true, base.Add(time.Second), 0) // batch 1, 2, 3
	o.applied(messages(4))
	o.flushed(true, base.Add(2*time.Second), 0) // batch 4
	o.applied(messages(5, 6))
	o.flushed(true, base.Add(10*time.Second), 0) // batch 5, 6
	o.applied(messages(7))
	o.flushed(false, base.Add(11*time.Second), 0) // waits for details
	checkDue(t, &o, base.Add(7*time.Second), delay, 1, 2, 3, 4)
	checkDue(t, &o, base.Add(14*time.Second), delay)
	checkDue(t, &o, base.Add(15*time.Second), delay, 5, 6)
	o.flushed(true, base.Add(20*time.Second), 0)
	checkDue(t, &o, base.Add(25*time.Second), delay, 7)
}

// applied keeps its own copy: Run reuses its fetch slice.
func TestOffsetsCopyApplied(t *testing.T) {
	t.Parallel()
	var o offsets
	fetched := messages(1, 2)
	o.applied(fetched)
	fetched[0].Offset, fetched[1].Offset = 8, 9
	o.flushed(true, base, 0)
	checkDue(t, &o, base, 0, 1, 2)
}

// Due batches stay until they are dropped (the aggregator postpones a
// commit when Redis does not answer the check of the days written), and
// due reports the write count of the last one.
func TestOffsetsDueUntilDropped(t *testing.T) {
	t.Parallel()
	var o offsets
	o.applied(messages(1))
	o.flushed(true, base, 3)
	o.applied(messages(2))
	o.flushed(true, base.Add(time.Second), 5)
	o.applied(messages(3))
	o.flushed(true, base.Add(time.Hour), 9)
	for range 2 {
		msgs, n, writes := o.due(base.Add(time.Minute), time.Second)
		if got := offsetsOf(msgs); !slices.Equal(got, []int64{1, 2}) || n != 2 || writes != 5 {
			t.Fatalf("due: offsets %v, %d batches, writes %d; want [1 2], 2, 5", got, n, writes)
		}
	}
	o.drop(2)
	msgs, n, writes := o.due(base.Add(2*time.Hour), time.Second)
	if got := offsetsOf(msgs); !slices.Equal(got, []int64{3}) || n != 1 || writes != 9 {
		t.Fatalf("due after drop: offsets %v, %d batches, writes %d; want [3], 1, 9", got, n, writes)
	}
}
