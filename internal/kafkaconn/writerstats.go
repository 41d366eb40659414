package kafkaconn

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// WriterMetrics exports what a part writes to Kafka as Prometheus metrics,
// labelled with the part and the topic:
//
//   - pixel_kafka_writer_requests_total: produce requests, retries and
//     failed ones included;
//   - pixel_kafka_writer_messages_total and pixel_kafka_writer_bytes_total:
//     the records in those requests and the bytes of their keys and values;
//   - pixel_kafka_writer_errors_total: failed requests, and writes that
//     failed before any request;
//   - pixel_kafka_writer_request_seconds: a histogram of the requests'
//     durations.
//
// Two kinds of writers feed it. A Producer (or any writer of its own
// requests) records each produce request through the WriterRecorder of its
// topic, which Topic returns: a few atomic additions per request, nothing
// per record. A kafka-go Writer, which counts for itself, is handed to
// Watch: its Stats, which reset at each call, are read and added up at each
// scrape. kafka-go keeps only the sum and count of its request durations,
// so the histogram of a watched Writer's topic has no buckets but +Inf; and
// a Writer counts no error when it fails before any request (no partition
// metadata). A topic is written either through recorders or by watched
// Writers within one WriterMetrics, not both.
//
// A nil *WriterMetrics records nothing.
type WriterMetrics struct {
	part string

	requests, messages, bytes, errors *prometheus.CounterVec
	seconds                           *prometheus.HistogramVec
	secondsDesc                       *prometheus.Desc // the histogram of watched Writers

	mu       sync.Mutex
	recorded map[string]bool // topics with a recorder
	watched  []*kafka.Writer
	times    map[string]*durationSum // by topic, of watched Writers
}

// durationSum adds up the request durations a watched Writer reports.
type durationSum struct {
	count uint64
	sum   float64
}

// writerRequestBuckets span a produce request acknowledged by every in-sync
// replica on a quiet cluster (under a millisecond) to one that ran into
// the 10 s timeout.
var writerRequestBuckets = prometheus.ExponentialBuckets(0.0005, 2, 16)

const writerRequestHelp = "Duration of the part's produce requests to the topic, until every in-sync replica acknowledged or the request failed (failed ones included). For topics written by a kafka-go Writer (the aggregator's) kafka-go keeps only the sum and count: their histogram has no bucket but +Inf."

// NewWriterMetrics returns the writer metrics of part, registered with reg;
// with a nil reg they are kept but not exported.
func NewWriterMetrics(reg prometheus.Registerer, part string) *WriterMetrics {
	labels := prometheus.Labels{"part": part}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pixel_kafka_writer_" + name, Help: help, ConstLabels: labels}, []string{"topic"})
	}
	m := &WriterMetrics{
		part:     part,
		requests: counter("requests_total", "Produce requests the part sent to the topic, retries and failed requests included."),
		messages: counter("messages_total", "Records in the part's produce requests to the topic, failed requests included (a record sent again counts again)."),
		bytes:    counter("bytes_total", "Bytes of the keys and values of the records in the part's produce requests to the topic, before compression (kafka-go Writers, the aggregator's, add about 22 bytes of overhead a record)."),
		errors:   counter("errors_total", "Failed writes of the part to the topic: produce requests that failed or whose records the broker refused, and writes that failed before any request because the topic's partitions could not be learnt (no broker reachable, unknown topic; kafka-go Writers, the aggregator's, do not count these)."),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pixel_kafka_writer_request_seconds", Help: writerRequestHelp, ConstLabels: labels, Buckets: writerRequestBuckets,
		}, []string{"topic"}),
		secondsDesc: prometheus.NewDesc("pixel_kafka_writer_request_seconds", writerRequestHelp, []string{"topic"}, labels),
		recorded:    map[string]bool{},
		times:       map[string]*durationSum{},
	}
	if reg != nil {
		reg.MustRegister(m)
	}
	return m
}

// WriterRecorder records the produce requests of one part to one topic.
// It is safe for concurrent use; a nil *WriterRecorder records nothing.
type WriterRecorder struct {
	requests, messages, bytes, errors prometheus.Counter
	seconds                           prometheus.Observer
}

// Topic returns the recorder of the part's requests to topic (the same
// series for every call with the same topic). It panics when a Writer of
// topic is watched (see WriterMetrics).
func (m *WriterMetrics) Topic(topic string) *WriterRecorder {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.times[topic]; ok {
		panic(fmt.Sprintf("kafkaconn: writer metrics of %s: topic %s has a watched kafka-go Writer already", m.part, topic))
	}
	m.recorded[topic] = true
	return &WriterRecorder{
		requests: m.requests.WithLabelValues(topic),
		messages: m.messages.WithLabelValues(topic),
		bytes:    m.bytes.WithLabelValues(topic),
		errors:   m.errors.WithLabelValues(topic),
		seconds:  m.seconds.WithLabelValues(topic),
	}
}

// Request records one produce request of records records holding bytes
// bytes of keys and values, sent at start, that ended with err.
func (r *WriterRecorder) Request(records, bytes int, start time.Time, err error) {
	if r == nil {
		return
	}
	r.seconds.Observe(time.Since(start).Seconds())
	r.requests.Inc()
	r.messages.Add(float64(records))
	r.bytes.Add(float64(bytes))
	if err != nil {
		r.errors.Inc()
	}
}

// Failed records a write that failed before any produce request could be
// sent (the topic's partitions unknown).
func (r *WriterRecorder) Failed() {
	if r != nil {
		r.errors.Inc()
	}
}

// Watch makes w's statistics part of the metrics, under w.Topic, and
// returns w. It panics when a recorder of that topic exists (see
// WriterMetrics).
func (m *WriterMetrics) Watch(w *kafka.Writer) *kafka.Writer {
	if m == nil {
		return w
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.recorded[w.Topic] {
		panic(fmt.Sprintf("kafkaconn: writer metrics of %s: topic %s has a recorder already", m.part, w.Topic))
	}
	if m.times[w.Topic] == nil {
		m.times[w.Topic] = &durationSum{}
		// The series exist, at zero, before the first scrape.
		for _, v := range []*prometheus.CounterVec{m.requests, m.messages, m.bytes, m.errors} {
			v.WithLabelValues(w.Topic)
		}
	}
	m.watched = append(m.watched, w)
	return w
}

// take adds the watched Writers' statistics since the last call.
func (m *WriterMetrics) take() {
	for _, w := range m.watched {
		s := w.Stats()
		m.requests.WithLabelValues(w.Topic).Add(float64(s.Writes))
		m.messages.WithLabelValues(w.Topic).Add(float64(s.Messages))
		m.bytes.WithLabelValues(w.Topic).Add(float64(s.Bytes))
		m.errors.WithLabelValues(w.Topic).Add(float64(s.Errors))
		t := m.times[w.Topic]
		t.count += uint64(s.WriteTime.Count)
		t.sum += s.WriteTime.Sum.Seconds()
	}
}

func (m *WriterMetrics) vecs() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.messages, m.bytes, m.errors, m.seconds}
}

// Describe implements prometheus.Collector.
func (m *WriterMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.vecs() {
		c.Describe(ch)
	}
	ch <- m.secondsDesc
}

// Collect implements prometheus.Collector: it reads the watched Writers'
// statistics first.
func (m *WriterMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	m.take()
	hists := make([]prometheus.Metric, 0, len(m.times))
	for topic, t := range m.times {
		hists = append(hists, prometheus.MustNewConstHistogram(m.secondsDesc, t.count, t.sum, nil, topic))
	}
	m.mu.Unlock()
	for _, h := range hists {
		ch <- h
	}
	for _, c := range m.vecs() {
		c.Collect(ch)
	}
}
