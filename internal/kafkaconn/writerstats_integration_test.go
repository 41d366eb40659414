//go:build integration

package kafkaconn_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
)

// TestWriterMetricsProducer against the real Kafka: a Producer's batch
// counts its records and their bytes exactly, one request and one duration
// per partition written and no error (once the topic's leaders are known;
// before, a refused request counts as a request and an error); a record the
// broker refuses (over its message.max.bytes) is a failed request at each
// attempt.
func TestWriterMetricsProducer(t *testing.T) {
	kc, topics := pipetest.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg := prometheus.NewRegistry()
	m := kafkaconn.NewWriterMetrics(reg, "test")
	p := kafkaconn.NewProducer(kc, topics.Events).WithMetrics(m)
	defer p.Close()
	var msgs []kafka.Message
	size := 0
	parts := map[int]bool{}
	for i := range 1000 {
		msg := kafka.Message{Key: []byte(fmt.Sprintf("content-%d", i%37)), Value: []byte(fmt.Sprintf("value-%d", i))}
		msgs = append(msgs, msg)
		size += len(msg.Key) + len(msg.Value)
		parts[kafkaconn.PartitionOf(msg.Key, 6)] = true
	}
	value := func(name string) float64 { return writerValue(t, reg, name, "test", topics.Events) }
	// Right after the topic is created the broker may answer "not leader"
	// for a while: a failed request is sent again, and counted again.
	if err := p.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	requests, errs := value("pixel_kafka_writer_requests_total"), value("pixel_kafka_writer_errors_total")
	if requests-errs != float64(len(parts)) {
		t.Errorf("%v requests, %v errors; want one successful request per partition written (%d)", requests, errs, len(parts))
	}
	// Once the leaders are known, the same batch again: exact figures.
	before := map[string]float64{}
	names := []string{"pixel_kafka_writer_messages_total", "pixel_kafka_writer_bytes_total", "pixel_kafka_writer_requests_total",
		"pixel_kafka_writer_request_seconds", "pixel_kafka_writer_errors_total"}
	for _, name := range names {
		before[name] = value(name)
	}
	if err := p.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"pixel_kafka_writer_messages_total":  1000,
		"pixel_kafka_writer_bytes_total":     float64(size),
		"pixel_kafka_writer_requests_total":  float64(len(parts)), // one per partition written
		"pixel_kafka_writer_request_seconds": float64(len(parts)),
		"pixel_kafka_writer_errors_total":    0,
	}
	for _, name := range names {
		if got := value(name) - before[name]; got != want[name] {
			t.Errorf("%s grew by %v, want %v", name, got, want[name])
		}
	}
	requests, errs = value("pixel_kafka_writer_requests_total"), value("pixel_kafka_writer_errors_total")

	// A record over the broker's message.max.bytes (1 MiB by default):
	// the Producer tries it 4 times, each a request that fails.
	big := kafka.Message{Key: []byte("big"), Value: bytes.Repeat([]byte("x"), 2<<20)}
	if err := p.WriteMessages(ctx, big); err == nil {
		t.Fatal("the broker took a 2 MiB record")
	}
	if got := value("pixel_kafka_writer_errors_total") - errs; got != 4 {
		t.Errorf("errors grew by %v with the refused record, want 4", got)
	}
	if got := value("pixel_kafka_writer_requests_total") - requests; got != 4 {
		t.Errorf("requests grew by %v with the refused record, want 4", got)
	}
}

// TestWriterMetricsWatchedWriter against the real Kafka: a kafka-go
// Writer's statistics, which reset at every read, add up across scrapes.
func TestWriterMetricsWatchedWriter(t *testing.T) {
	kc, topics := pipetest.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg := prometheus.NewRegistry()
	m := kafkaconn.NewWriterMetrics(reg, "test")
	w := m.Watch(kafkaconn.NewWriter(kc, topics.Counts, nil))
	defer w.Close()
	write := func(from, n int) {
		var msgs []kafka.Message
		for i := from; i < from+n; i++ {
			msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprint(i)), Value: []byte("0123456789")})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	value := func(name string) float64 { return writerValue(t, reg, name, "test", topics.Counts) }
	// Right after the topic is created the broker may answer "not leader"
	// for a while, and kafka-go sends the batch again: warm up first.
	write(0, 50)
	if got := value("pixel_kafka_writer_messages_total"); got < 50 {
		t.Errorf("messages after the first write = %v, want at least 50", got)
	}
	// Each scrape reads (and resets) the Writer's statistics; the counters
	// go on from where they were.
	messages, errs := value("pixel_kafka_writer_messages_total"), value("pixel_kafka_writer_errors_total")
	write(50, 30)
	if got := value("pixel_kafka_writer_messages_total") - messages; got != 30 {
		t.Errorf("messages grew by %v with the second write, want 30", got)
	}
	write(80, 20)
	if got := value("pixel_kafka_writer_messages_total") - messages; got != 50 {
		t.Errorf("messages grew by %v with the second and third writes, want 50", got)
	}
	if got := value("pixel_kafka_writer_errors_total") - errs; got != 0 {
		t.Errorf("errors grew by %v once the topic's leaders were known", got)
	}
	if got := value("pixel_kafka_writer_bytes_total"); got < 100*10 {
		t.Errorf("bytes = %v, want at least 10 per message", got)
	}
	requests := value("pixel_kafka_writer_requests_total")
	if requests < 3 {
		t.Errorf("requests = %v, want at least one per write", requests)
	}
	if got := value("pixel_kafka_writer_request_seconds"); got != requests {
		t.Errorf("request durations = %v, want one per request (%v)", got, requests)
	}
}
