package edge

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
)

// TestHitRecords: the records read from spooled hits carry the hit's key,
// value and receive time, in the order of the indexes, then io.EOF.
func TestHitRecords(t *testing.T) {
	mk := func(key uint64, ms int64, value string) []byte {
		b := make([]byte, headerLen, headerLen+len(value))
		binary.BigEndian.PutUint64(b, key)
		binary.BigEndian.PutUint64(b[keyLen:], uint64(ms))
		return append(b, value...)
	}
	recs := [][]byte{mk(1, 1000, "a"), mk(2, 2000, "bb"), mk(3, 3000, "ccc")}
	r := &hitRecords{recs: recs, idx: []int32{2, 0}}
	for _, want := range []int{2, 0} {
		rec, err := r.ReadRecord()
		if err != nil {
			t.Fatal(err)
		}
		key, _ := kafka.ReadAll(rec.Key)
		value, _ := kafka.ReadAll(rec.Value)
		if string(key) != string(recs[want][:keyLen]) || string(value) != string(recs[want][headerLen:]) ||
			rec.Time.UnixMilli() != int64(want+1)*1000 {
			t.Fatalf("record %d: key %x value %q time %v", want, key, value, rec.Time)
		}
	}
	if _, err := r.ReadRecord(); err == nil {
		t.Fatal("no io.EOF after the last index")
	}
}

// TestAppendChunks: a partition's hits are cut into produce requests of at
// most maxRecords hits and maxBytes bytes, each hit in exactly one, in
// order; a hit larger than maxBytes goes alone.
func TestAppendChunks(t *testing.T) {
	// Hits that fill the byte limit exactly share a chunk.
	recs := [][]byte{make([]byte, 10), make([]byte, 10), make([]byte, 10)}
	if c := appendChunks(nil, 0, []int32{0, 1, 2}, recs, 10, 20); len(c) != 2 || len(c[0].idx) != 2 || len(c[1].idx) != 1 {
		t.Fatalf("3 hits of 10 bytes, 20 bytes a chunk: %+v", c)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		n := rng.IntN(60)
		recs := make([][]byte, n)
		ix := make([]int32, n)
		for i := range recs {
			recs[i] = make([]byte, 1+rng.IntN(40))
			ix[i] = int32(i)
		}
		maxRecords, maxBytes := 1+rng.IntN(10), 1+rng.IntN(100)
		chunks := appendChunks([]chunk{{part: 9}}, 3, ix, recs, maxRecords, maxBytes)
		if chunks[0].part != 9 {
			t.Fatal("appendChunks overwrote dst")
		}
		var next int32
		for _, c := range chunks[1:] {
			size := 0
			for _, i := range c.idx {
				if i != next {
					t.Fatalf("hit %d where %d was due (%d hits, %d per chunk, %d bytes)", i, next, n, maxRecords, maxBytes)
				}
				next++
				size += len(recs[i])
			}
			if c.bytes != size-len(c.idx)*(headerLen-keyLen) {
				t.Fatalf("chunk of %d hits, %d bytes spooled: %d bytes sent", len(c.idx), size, c.bytes)
			}
			if c.part != 3 || len(c.idx) == 0 || len(c.idx) > maxRecords || (size > maxBytes && len(c.idx) > 1) {
				t.Fatalf("chunk of partition %d: %d hits, %d bytes; limits %d hits, %d bytes", c.part, len(c.idx), size, maxRecords, maxBytes)
			}
			// Full: a chunk ends only at a limit (or at the last hit), so
			// Kafka gets as few requests as the limits allow.
			if int(next) < n && len(c.idx) < maxRecords && size+len(recs[next]) <= maxBytes {
				t.Fatalf("chunk of %d hits, %d bytes closed before hit %d (%d bytes) that fits in %d bytes", len(c.idx), size, next, len(recs[next]), maxBytes)
			}
		}
		if int(next) != n {
			t.Fatalf("%d of %d hits in chunks", next, n)
		}
	}
}

// TestProducerMetrics: the edge's producer records in the writer metrics
// of part "edge": a batch that reaches no broker fails before any produce
// request and counts one error, whatever its size.
func TestProducerMetrics(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	reg := prometheus.NewRegistry()
	p := newProducer(KafkaConfig{Brokers: []string{addr}, Topic: "hits", WriteTimeout: 5 * time.Second}, nil).
		withMetrics(kafkaconn.NewWriterMetrics(reg, "edge"))
	defer p.close()
	recs := make([][]byte, 100)
	idx := make([]int32, len(recs))
	for i := range recs {
		recs[i] = make([]byte, headerLen+10)
		idx[i] = int32(i)
	}
	failed, err := p.produce(context.Background(), recs, idx)
	if err == nil || len(failed) != len(recs) {
		t.Fatalf("produce to an unreachable broker: %d of %d failed, err %v", len(failed), len(recs), err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] += m.GetCounter().GetValue()
		}
	}
	if got["pixel_kafka_writer_errors_total"] != 1 || got["pixel_kafka_writer_requests_total"] != 0 {
		t.Errorf("errors %v, requests %v; want 1 and 0", got["pixel_kafka_writer_errors_total"], got["pixel_kafka_writer_requests_total"])
	}
}
