//go:build integration

package kafkaconn_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
)

// TestProducerAndRanges against the real Kafka: a producer's batches land
// in the partitions kafka-go's Hash balancer picks, in order, with their
// headers and times, and Ranges reads them back; OffsetAt finds the first
// record of a time.
func TestProducerAndRanges(t *testing.T) {
	kc, topics := pipetest.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := kafkaconn.NewProducer(kc, topics.Events)
	defer p.Close()
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var sent []kafka.Message
	for batch := range 3 {
		var msgs []kafka.Message
		for i := range 700 {
			n := batch*700 + i
			msgs = append(msgs, kafka.Message{
				Key: []byte(fmt.Sprintf("content-%d", n%97)), Value: []byte(fmt.Sprintf("v%d", n)),
				Time:    t0.Add(time.Duration(n) * time.Millisecond),
				Headers: []kafka.Header{{Key: "n", Value: []byte(fmt.Sprint(n))}},
			})
		}
		if err := p.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, msgs...)
	}
	r := kafkaconn.NewRanges(kc, topics.Events, nil)
	byPart := map[int][]kafka.Message{}
	for _, m := range sent {
		part := kafkaconn.PartitionOf(m.Key, 6)
		byPart[part] = append(byPart[part], m)
	}
	for part, want := range byPart {
		i := 0
		if _, err := r.Read(ctx, part, 0, int64(len(want)), func(m *kafka.Message) error {
			w := want[i]
			if string(m.Key) != string(w.Key) || string(m.Value) != string(w.Value) || !m.Time.Equal(w.Time) ||
				len(m.Headers) != 1 || string(m.Headers[0].Value) != string(w.Headers[0].Value) || m.Offset != int64(i) {
				return fmt.Errorf("partition %d offset %d: %s=%s at %v, want %s=%s at %v", part, m.Offset, m.Key, m.Value, m.Time, w.Key, w.Value, w.Time)
			}
			i++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if i != len(want) {
			t.Fatalf("partition %d: read %d of %d", part, i, len(want))
		}
		// The first record at or after the time of the tenth one is it.
		if len(want) > 10 {
			off, err := r.OffsetAt(ctx, part, want[10].Time)
			if err != nil || off != 10 {
				t.Fatalf("partition %d: OffsetAt(time of offset 10) = %d, %v", part, off, err)
			}
		}
	}
	if off, err := r.OffsetAt(ctx, 0, time.Now().Add(time.Hour)); err != nil || off != -1 {
		t.Fatalf("OffsetAt(the future) = %d, %v; want -1", off, err)
	}
}

// TestProducerKeepsPartitionOrder: a batch whose messages of one partition
// need many produce requests (more than ChunkRecords of them) lands in the
// order given, whatever the other partitions' requests do at the same
// time: the aggregators apply a source position once, and skip a record
// that comes after a later one.
func TestProducerKeepsPartitionOrder(t *testing.T) {
	kc, topics := pipetest.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := kafkaconn.NewProducer(kc, topics.Events)
	defer p.Close()
	const hot, perBatch = 8 * kafkaconn.ChunkRecords, 100
	var msgs []kafka.Message
	for n := range hot {
		msgs = append(msgs, kafka.Message{Key: []byte("hot"), Value: fmt.Appendf(nil, "%d", n)})
		if n%(hot/perBatch) == 0 { // some of every other partition too
			msgs = append(msgs, kafka.Message{Key: fmt.Appendf(nil, "other-%d", n), Value: []byte("x")})
		}
	}
	if err := p.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	part := kafkaconn.PartitionOf([]byte("hot"), 6)
	inPart := 0
	for _, m := range msgs {
		if kafkaconn.PartitionOf(m.Key, 6) == part {
			inPart++
		}
	}
	next := 0
	if _, err := kafkaconn.NewRanges(kc, topics.Events, nil).Read(ctx, part, 0, int64(inPart), func(m *kafka.Message) error {
		if string(m.Key) != "hot" {
			return nil
		}
		if string(m.Value) != fmt.Sprint(next) {
			return fmt.Errorf("offset %d holds message %s, want %d: the partition's requests landed out of order", m.Offset, m.Value, next)
		}
		next++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if next != hot {
		t.Fatalf("read %d of the %d messages of the hot partition", next, hot)
	}
}
