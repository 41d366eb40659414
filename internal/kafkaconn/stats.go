package kafkaconn

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// ReaderMetrics exports the statistics of a part's kafka-go Reader as
// Prometheus metrics, labelled with the part: messages, bytes, fetches,
// errors, timeouts and rebalances as counters, the fetch queue's length and
// (for a reader outside a consumer group) the lag as gauges. kafka-go's
// Stats resets its counters at each call; ReaderMetrics adds them up, and
// keeps adding when Watch replaces the reader (the aggregator opens a new
// one after a reset).
type ReaderMetrics struct {
	mu sync.Mutex
	r  *kafka.Reader

	messages, bytes, fetches, errors, timeouts, rebalances prometheus.Counter
	queue, lag                                             prometheus.Gauge
}

// NewReaderMetrics registers the metrics of part's reader with reg.
func NewReaderMetrics(reg prometheus.Registerer, part string) *ReaderMetrics {
	labels := prometheus.Labels{"part": part}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "pixel_kafka_reader_" + name, Help: help, ConstLabels: labels})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: "pixel_kafka_reader_" + name, Help: help, ConstLabels: labels})
	}
	m := &ReaderMetrics{
		messages:   counter("messages_total", "Messages the part's Kafka reader fetched (kafka-go counts a message when it arrives, before it is returned)."),
		bytes:      counter("bytes_total", "Bytes of the messages the part's Kafka reader fetched."),
		fetches:    counter("fetches_total", "Fetch requests of the part's Kafka reader."),
		errors:     counter("errors_total", "Errors of the part's Kafka reader (kafka-go retries them)."),
		timeouts:   counter("timeouts_total", "Fetches of the part's Kafka reader that timed out."),
		rebalances: counter("rebalances_total", "Consumer group rebalances the part's Kafka reader took part in."),
		queue:      gauge("queue_length", "Messages fetched and not yet returned by the part's Kafka reader."),
		lag:        gauge("lag", "Messages behind the partition's end (readers outside a consumer group only; -1 when unknown)."),
	}
	if reg != nil {
		reg.MustRegister(m)
	}
	return m
}

// Watch makes r the reader whose statistics are exported.
func (m *ReaderMetrics) Watch(r *kafka.Reader) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.take()
	m.r = r
}

// take adds the current reader's statistics since the last call.
func (m *ReaderMetrics) take() {
	if m.r == nil {
		return
	}
	s := m.r.Stats()
	m.messages.Add(float64(s.Messages))
	m.bytes.Add(float64(s.Bytes))
	m.fetches.Add(float64(s.Fetches))
	m.errors.Add(float64(s.Errors))
	m.timeouts.Add(float64(s.Timeouts))
	m.rebalances.Add(float64(s.Rebalances))
	m.queue.Set(float64(s.QueueLength))
	m.lag.Set(float64(s.Lag))
}

func (m *ReaderMetrics) metrics() []prometheus.Collector {
	return []prometheus.Collector{m.messages, m.bytes, m.fetches, m.errors, m.timeouts, m.rebalances, m.queue, m.lag}
}

// Describe implements prometheus.Collector.
func (m *ReaderMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.metrics() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector: it reads the reader's
// statistics first.
func (m *ReaderMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	m.take()
	m.mu.Unlock()
	for _, c := range m.metrics() {
		c.Collect(ch)
	}
}
