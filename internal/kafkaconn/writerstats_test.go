package kafkaconn_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
)

// TestWriterMetricsRecorder: each produce request adds one request, its
// records and bytes and one duration, a failed one an error too; a write
// that fails before any request is an error and no request. A nil
// WriterMetrics or recorder records nothing.
func TestWriterMetricsRecorder(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := kafkaconn.NewWriterMetrics(reg, "test")
	r := m.Topic("a")
	if m.Topic("a") == nil {
		t.Fatal("second recorder of a topic")
	}
	start := time.Now()
	r.Request(10, 300, start, nil)
	r.Request(5, 100, start, errors.New("refused"))
	r.Failed()
	want := map[string]float64{
		"pixel_kafka_writer_requests_total":  2,
		"pixel_kafka_writer_messages_total":  15,
		"pixel_kafka_writer_bytes_total":     400,
		"pixel_kafka_writer_errors_total":    2,
		"pixel_kafka_writer_request_seconds": 2,
	}
	for name, v := range want {
		if got := writerValue(t, reg, name, "test", "a"); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	var none *kafkaconn.WriterMetrics
	none.Topic("b").Request(1, 1, start, nil)
	none.Topic("b").Failed()
	if w := none.Watch(&kafka.Writer{Topic: "b"}); w == nil {
		t.Fatal("Watch of a nil WriterMetrics lost the writer")
	}
	// Without a registerer the metrics work, unexported.
	kafkaconn.NewWriterMetrics(nil, "test").Topic("a").Request(1, 1, start, nil)
}

// TestWriterMetricsWatch: a watched kafka-go Writer's series exist before
// it writes, its request histogram has no bucket but +Inf, and a topic
// cannot be both recorded and watched in one WriterMetrics (but can in two
// parts' on one registry).
func TestWriterMetricsWatch(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := kafkaconn.NewWriterMetrics(reg, "test")
	w := &kafka.Writer{Addr: kafka.TCP("127.0.0.1:1"), Topic: "w"}
	defer w.Close()
	if m.Watch(w) != w {
		t.Fatal("Watch did not return the writer")
	}
	m.Watch(w) // twice: no duplicate series
	for _, name := range []string{"pixel_kafka_writer_requests_total", "pixel_kafka_writer_messages_total", "pixel_kafka_writer_request_seconds"} {
		if got := writerValue(t, reg, name, "test", "w"); got != 0 {
			t.Errorf("%s = %v before any write", name, got)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "pixel_kafka_writer_request_seconds" {
			if b := mf.GetMetric()[0].GetHistogram().GetBucket(); len(b) != 0 {
				t.Errorf("watched writer's histogram has %d buckets", len(b))
			}
		}
	}
	mustPanic(t, "recorder of a watched topic", func() { m.Topic("w") })
	m.Topic("p")
	mustPanic(t, "watch of a recorded topic", func() { m.Watch(&kafka.Writer{Topic: "p"}) })
	// Parts sharing a registry (one process running several) may write
	// the same topic, one through a recorder, one with a watched Writer.
	other := kafkaconn.NewWriterMetrics(reg, "other")
	other.Topic("w").Request(1, 1, time.Now(), nil)
	if got := writerValue(t, reg, "pixel_kafka_writer_request_seconds", "other", "w"); got != 1 {
		t.Errorf("request durations of the other part = %v, want 1", got)
	}
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: no panic", what)
		}
	}()
	f()
}

// TestWriterMetricsUnreachableBroker: a Producer that reaches no broker
// fails before any produce request, and counts an error.
func TestWriterMetricsUnreachableBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	reg := prometheus.NewRegistry()
	p := kafkaconn.NewProducer(kafkaconn.Config{Brokers: []string{addr}}, "t").WithMetrics(kafkaconn.NewWriterMetrics(reg, "test"))
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("v")}); err == nil {
		t.Fatal("write to an unreachable broker succeeded")
	}
	if got := writerValue(t, reg, "pixel_kafka_writer_errors_total", "test", "t"); got != 1 {
		t.Errorf("errors = %v, want 1", got)
	}
	if got := writerValue(t, reg, "pixel_kafka_writer_requests_total", "test", "t"); got != 0 {
		t.Errorf("requests = %v, want 0", got)
	}
}

// writerValue gathers reg and returns the value of counter name, or the
// sample count of histogram name, of part and topic.
func writerValue(t *testing.T, reg *prometheus.Registry, name, part, topic string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "part" && l.GetValue() != part || l.GetName() == "topic" && l.GetValue() != topic {
					continue metrics
				}
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s{part=%q,topic=%q}", name, part, topic)
	return 0
}
