package kafkaconn

import (
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestPartitionOfMatchesHashBalancer: producers send a key to the partition
// kafka-go's Hash balancer would, so parts writing with either agree on
// every key's partition (a visitor's hits, a content id's events).
func TestPartitionOfMatchesHashBalancer(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	parts := make([]int, 64)
	for i := range parts {
		parts[i] = i
	}
	for range 20000 {
		key := make([]byte, 1+rng.IntN(40))
		for i := range key {
			key[i] = byte(rng.Uint32())
		}
		n := 1 + rng.IntN(len(parts))
		want := (&kafka.Hash{}).Balance(kafka.Message{Key: key}, parts[:n]...)
		if got := PartitionOf(key, n); got != want {
			t.Fatalf("key %x over %d partitions: PartitionOf %d, kafka.Hash %d", key, n, got, want)
		}
	}
}

// TestAppendMsgChunks: every message once, in order, no chunk over the
// record or byte limit unless it is a single larger message.
func TestAppendMsgChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	msgs := make([]kafka.Message, 500)
	ix := make([]int32, len(msgs))
	for i := range msgs {
		msgs[i] = kafka.Message{Key: make([]byte, 4), Value: make([]byte, rng.IntN(300))}
		ix[i] = int32(i)
	}
	msgs[77].Value = make([]byte, 5000) // larger than a chunk's bytes
	const maxRecords, maxBytes = 37, 2000
	chunks := appendMsgChunks(nil, 3, ix, msgs, maxRecords, maxBytes)
	next := int32(0)
	for _, c := range chunks {
		size := 0
		for _, i := range c.idx {
			if i != next {
				t.Fatalf("message %d where %d was due", i, next)
			}
			next++
			size += len(msgs[i].Key) + len(msgs[i].Value)
		}
		if c.bytes != size {
			t.Fatalf("chunk of %d messages, %d bytes: %d bytes counted", len(c.idx), size, c.bytes)
		}
		if c.part != 3 || len(c.idx) == 0 || len(c.idx) > maxRecords || (size > maxBytes && len(c.idx) > 1) {
			t.Fatalf("chunk of %d messages, %d bytes, partition %d", len(c.idx), size, c.part)
		}
	}
	if next != int32(len(msgs)) {
		t.Fatalf("%d of %d messages in chunks", next, len(msgs))
	}
}

// TestMsgRecords: records carry each message's key, value, headers and
// time, in the order of the indexes; a message without a time gets now.
func TestMsgRecords(t *testing.T) {
	at := time.UnixMilli(1_764_331_200_000)
	msgs := []kafka.Message{
		{Key: []byte("a"), Value: []byte("1"), Time: at},
		{Value: []byte("2"), Headers: []kafka.Header{{Key: "reason", Value: []byte("x")}}},
		{Key: []byte("c"), Value: []byte("3"), Time: at.Add(time.Second)},
	}
	r := &msgRecords{msgs: msgs, idx: []int32{2, 0, 1}}
	for _, want := range []int{2, 0, 1} {
		rec, err := r.ReadRecord()
		if err != nil {
			t.Fatal(err)
		}
		m := msgs[want]
		var key, value []byte
		if rec.Key != nil {
			key, _ = io.ReadAll(rec.Key)
		}
		value, _ = io.ReadAll(rec.Value)
		if string(key) != string(m.Key) || string(value) != string(m.Value) || len(rec.Headers) != len(m.Headers) {
			t.Fatalf("record %d: key %q value %q headers %v", want, key, value, rec.Headers)
		}
		if m.Time.IsZero() && time.Since(rec.Time) > time.Minute || !m.Time.IsZero() && !rec.Time.Equal(m.Time) {
			t.Fatalf("record %d: time %v", want, rec.Time)
		}
	}
	if _, err := r.ReadRecord(); err != io.EOF {
		t.Fatalf("after the last record: %v", err)
	}
}
