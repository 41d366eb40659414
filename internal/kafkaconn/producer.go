package kafkaconn

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// Produce requests carry at most ChunkRecords records and ChunkBytes bytes
// of one partition. The broker refuses record batches above its
// message.max.bytes (1 MiB by default); a chunk stays well below it.
const (
	ChunkRecords = 4000
	ChunkBytes   = 768 << 10
)

// partitionsTTL is how long a producer trusts the topic's partition count
// before asking the cluster again (and at once after a failed request).
const partitionsTTL = 10 * time.Second

// Partitions caches the partition count of a topic for a producer that
// partitions by itself. Used by one goroutine at a time.
type Partitions struct {
	client  *kafka.Client
	topic   string
	n       int // 0: ask the cluster
	checked time.Time
}

// NewPartitions returns the partition count cache of topic.
func NewPartitions(client *kafka.Client, topic string) *Partitions {
	return &Partitions{client: client, topic: topic}
}

// Count returns the topic's partition count, asking the cluster when the
// cached count is older than partitionsTTL or was forgotten.
func (p *Partitions) Count(ctx context.Context) (int, error) {
	if p.n > 0 && time.Since(p.checked) < partitionsTTL {
		return p.n, nil
	}
	res, err := p.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{p.topic}})
	if err != nil {
		return 0, fmt.Errorf("metadata of %s: %w", p.topic, err)
	}
	for _, t := range res.Topics {
		if t.Name != p.topic {
			continue
		}
		if t.Error != nil {
			return 0, fmt.Errorf("metadata of %s: %w", p.topic, t.Error)
		}
		if len(t.Partitions) == 0 {
			return 0, fmt.Errorf("metadata of %s: no partitions", p.topic)
		}
		p.n, p.checked = len(t.Partitions), time.Now()
		return p.n, nil
	}
	return 0, fmt.Errorf("metadata of %s: %w", p.topic, kafka.UnknownTopicOrPartition)
}

// Forget makes the next Count ask the cluster (after a failed request: the
// partitions or their leaders may have changed).
func (p *Partitions) Forget() { p.n = 0 }

// Send is one produce request of recs to a partition of topic; it returns
// the broker's error, or the first refused record's. With RequireNone there
// is no answer to check.
func Send(ctx context.Context, client *kafka.Client, topic string, part int, acks kafka.RequiredAcks, codec kafka.Compression, recs kafka.RecordReader) error {
	res, err := client.Produce(ctx, &kafka.ProduceRequest{
		Topic:        topic,
		Partition:    part,
		RequiredAcks: acks,
		Compression:  codec,
		Records:      recs,
	})
	switch {
	case err != nil:
		return err
	case res == nil:
		return nil
	case res.Error != nil:
		return res.Error
	case len(res.RecordErrors) > 0:
		for _, e := range res.RecordErrors {
			return fmt.Errorf("kafka refused a record of partition %d: %w", part, e)
		}
	}
	return nil
}

// BytesReader is a record key or value read from bytes the caller holds
// (kafka.Bytes would copy nothing either, but allocates per record).
type BytesReader struct{ bytes.Reader }

// Close does nothing.
func (*BytesReader) Close() error { return nil }

// Producer writes whole batches of messages to one topic with kafka-go's
// Client.Produce, waiting for the acknowledgement of all in-sync replicas:
// the batch is grouped by partition, and each partition's messages go out as
// produce requests read straight from the messages. kafka-go's Writer would
// queue every message for a per-partition goroutine, start a timer per
// batch and allocate a BatchSize-long slice per partition and call; none of
// that is needed when the caller holds a whole batch and waits for its
// answer.
//
// Partitions are chosen exactly as kafka-go's Hash balancer (the Writer's
// of NewWriter) chooses them: FNV-1a of the key, Sarama-compatible; messages
// without a key go round robin. A Producer is used by one goroutine at a
// time.
type Producer struct {
	client     *kafka.Client
	transport  *kafka.Transport
	topic      string
	partitions *Partitions
	rr         int
	rec        *WriterRecorder // nil: no metrics

	byPart [][]int32 // scratch: indexes of a batch's messages by partition
	chunks []msgChunk
}

type msgChunk struct {
	part  int
	idx   []int32
	bytes int // of the messages' keys and values
	err   error
	done  bool
}

// NewProducer returns a producer of topic with connections of its own.
func NewProducer(c Config, topic string) *Producer {
	t := NewTransport(topic)
	client := &kafka.Client{Addr: kafka.TCP(c.Brokers...), Transport: t, Timeout: 10 * time.Second}
	return &Producer{client: client, transport: t, topic: topic, partitions: NewPartitions(client, topic)}
}

// WithMetrics makes the producer record its produce requests, and the
// writes that fail before any request, in m under its topic, and returns
// it.
func (p *Producer) WithMetrics(m *WriterMetrics) *Producer {
	p.rec = m.Topic(p.topic)
	return p
}

// Topic is the topic the producer writes.
func (p *Producer) Topic() string { return p.topic }

// Close releases the producer's connections.
func (p *Producer) Close() error {
	p.transport.CloseIdleConnections()
	return nil
}

// PartitionOf is kafka-go's Hash balancer: FNV-1a of key, the sum taken as
// a signed 32-bit number, modulo n, made non-negative.
func PartitionOf(key []byte, n int) int {
	h := uint32(2166136261)
	for _, c := range key {
		h ^= uint32(c)
		h *= 16777619
	}
	part := int32(h) % int32(n)
	if part < 0 {
		part = -part
	}
	return int(part)
}

// WriteMessages writes msgs and returns when every partition's requests are
// acknowledged, or with the first error. A partition's request is all or
// nothing, but on an error other partitions may have been written: the
// caller writes the whole batch again (at least once, as with kafka-go's
// Writer). Message.Topic and Message.Partition are ignored.
func (p *Producer) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	n, err := p.partitions.Count(ctx)
	if err != nil {
		p.rec.Failed()
		return err
	}
	if cap(p.byPart) < n {
		p.byPart = make([][]int32, n)
	}
	p.byPart = p.byPart[:n]
	for i := range p.byPart {
		p.byPart[i] = p.byPart[i][:0]
	}
	for i := range msgs {
		var part int
		if len(msgs[i].Key) == 0 {
			part, p.rr = p.rr%n, p.rr+1
		} else {
			part = PartitionOf(msgs[i].Key, n)
		}
		p.byPart[part] = append(p.byPart[part], int32(i))
	}
	p.chunks = p.chunks[:0]
	for part, ix := range p.byPart {
		p.chunks = appendMsgChunks(p.chunks, part, ix, msgs, ChunkRecords, ChunkBytes)
	}
	// A chunk that failed is sent again, a few times, before the batch
	// fails: right after a topic is created or a leader moves, the broker
	// answers "not leader" until metadata catch up. Chunks that succeeded
	// are not sent again.
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		p.sendAll(ctx, msgs)
		var failed *msgChunk
		for i := range p.chunks {
			if !p.chunks[i].done {
				failed = &p.chunks[i]
				break
			}
		}
		if failed == nil {
			return nil
		}
		p.partitions.Forget()
		if attempt == maxAttempts || ctx.Err() != nil {
			return fmt.Errorf("produce %d records to %s/%d (attempt %d): %w", len(failed.idx), p.topic, failed.part, attempt, failed.err)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff *= 2
	}
}

// maxAttempts bounds the sends of one chunk in one WriteMessages call.
const maxAttempts = 4

// sendAll sends the chunks not yet acknowledged: the partitions
// concurrently, and each partition's chunks one after the other, in order,
// none after one that failed. A partition keeps the order of its messages
// that way: consumers that apply each source position once (the
// aggregators) need a partition's records in the order they were given,
// and two requests of one partition in flight at once may be appended in
// either order, or the second succeed where the first failed.
func (p *Producer) sendAll(ctx context.Context, msgs []kafka.Message) {
	sendPart := func(first int) {
		part := p.chunks[first].part
		for i := first; i < len(p.chunks) && p.chunks[i].part == part; i++ {
			c := &p.chunks[i]
			if c.done {
				continue
			}
			c.err = p.send(ctx, msgs, c)
			c.done = c.err == nil
			if c.err != nil {
				return // the later chunks wait for this one
			}
		}
	}
	var firsts []int
	for i := range p.chunks {
		if i == 0 || p.chunks[i].part != p.chunks[i-1].part {
			firsts = append(firsts, i)
		}
	}
	if len(firsts) == 1 {
		sendPart(0) // one partition: no goroutine
		return
	}
	var wg sync.WaitGroup
	for _, first := range firsts {
		wg.Go(func() { sendPart(first) })
	}
	wg.Wait()
}

// appendMsgChunks cuts ix, the indexes of one partition's messages, into
// chunks of at most maxRecords messages and maxBytes bytes of keys and
// values (a single larger message makes a chunk of its own), in order, and
// appends them to dst.
func appendMsgChunks(dst []msgChunk, part int, ix []int32, msgs []kafka.Message, maxRecords, maxBytes int) []msgChunk {
	for len(ix) > 0 {
		end, size := 0, 0
		for end < len(ix) && end < maxRecords {
			m := &msgs[ix[end]]
			n := len(m.Key) + len(m.Value)
			if end > 0 && size+n > maxBytes {
				break
			}
			size += n
			end++
		}
		dst = append(dst, msgChunk{part: part, idx: ix[:end], bytes: size})
		ix = ix[end:]
	}
	return dst
}

// send is one produce request of a chunk, acknowledged by all in-sync
// replicas.
func (p *Producer) send(ctx context.Context, msgs []kafka.Message, c *msgChunk) error {
	start := time.Now()
	err := Send(ctx, p.client, p.topic, c.part, kafka.RequireAll, 0, &msgRecords{msgs: msgs, idx: c.idx})
	p.rec.Request(len(c.idx), c.bytes, start, err)
	return err
}

// msgRecords reads messages as Kafka records without copying them (a
// message without a time gets the current time). kafka-go
// encodes each record before it asks for the next, so one Record and two
// readers serve them all.
type msgRecords struct {
	msgs       []kafka.Message
	idx        []int32
	next       int
	rec        kafka.Record
	key, value BytesReader
}

func (r *msgRecords) ReadRecord() (*kafka.Record, error) {
	if r.next >= len(r.idx) {
		return nil, io.EOF
	}
	m := &r.msgs[r.idx[r.next]]
	r.next++
	r.rec = kafka.Record{Time: m.Time, Headers: m.Headers}
	if r.rec.Time.IsZero() {
		r.rec.Time = time.Now() // as kafka-go's Writer does
	}
	if m.Key != nil {
		r.key.Reset(m.Key)
		r.rec.Key = &r.key
	}
	if m.Value != nil {
		r.value.Reset(m.Value)
		r.rec.Value = &r.value
	}
	return &r.rec, nil
}

// WriterMetadataTTL is how often a writer's transport refreshes where the
// partitions' leaders are (kafka-go's default: a random time up to 6 s).
const WriterMetadataTTL = time.Second

// NewTransport returns a kafka-go transport of its own for a client that
// writes topic. Its metadata (where each partition's leader is) covers that
// topic only and is refreshed at a random time within WriterMetadataTTL:
// when a leader moves (a broker lost, restarted or shut down), writes go on
// on the new leader within about a second of the cluster naming it, instead
// of up to six seconds of "not leader" answers, during which the edge's
// spool and the processor's batches wait.
func NewTransport(topic string) *kafka.Transport {
	return &kafka.Transport{MetadataTTL: WriterMetadataTTL, MetadataTopics: []string{topic}}
}
