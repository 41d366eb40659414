//go:build integration

package kafkaconn_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
)

// TestReaderMetrics: messages fetched by two consumer-group readers in turn
// (as the aggregator replaces its reader after a reset) add up in one
// counter: each reader fetches at least what it returns, and replacing the
// reader loses nothing.
func TestReaderMetrics(t *testing.T) {
	kc, topics := pipetest.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := kafkaconn.NewProducer(kc, topics.Events)
	defer p.Close()
	var msgs []kafka.Message
	for i := range 100 {
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprint(i)), Value: []byte("0123456789")})
	}
	if err := p.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := kafkaconn.NewReaderMetrics(reg, "test")
	read := func(n int) {
		r := kafkaconn.NewGroupReader(kc, topics.Events, "stats-test", nil)
		defer r.Close()
		m.Watch(r)
		for range n {
			msg, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if string(msg.Value) != "0123456789" {
				t.Fatalf("read %q", msg.Value)
			}
		}
		m.Watch(r) // take its last figures before it closes
	}
	read(40)
	first := counterValue(t, reg, "pixel_kafka_reader_messages_total")
	read(60)
	total := counterValue(t, reg, "pixel_kafka_reader_messages_total")
	if first < 40 || total < first+60 {
		t.Errorf("messages: %v after the first reader, %v after the second; want at least 40 and 60 more", first, total)
	}
	if b := counterValue(t, reg, "pixel_kafka_reader_bytes_total"); b < 10*total {
		t.Errorf("bytes: %v, want at least 10 per message (%v)", b, total)
	}
}

// counterValue gathers reg and returns the value of counter name.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
