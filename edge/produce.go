package edge

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
)

// producer hands spooled hits to Kafka with kafka-go's Client.Produce: the
// hits of one batch are grouped by partition and each partition's hits go
// out as produce requests whose records are read straight from the spool's
// bytes. kafka-go's Writer would copy every hit into a kafka.Message, queue
// it for a per-partition goroutine, start a timer per batch and allocate a
// BatchSize-long slice per partition and call; none of that is needed when
// the caller already holds a whole batch and waits for its answer.
//
// Partitions are chosen exactly as kafka-go's Hash balancer chooses them
// (FNV-1a of the key, Sarama-compatible), so edges of either kind send a
// visitor to the same partition. Only the publisher's goroutine uses it.
type producer struct {
	client *kafka.Client
	own    *kafka.Transport // closed by close
	topic  string
	acks   kafka.RequiredAcks
	codec  kafka.Compression // none; benchmarks compare others

	partitions *kafkaconn.Partitions
	lanes      *lanes                    // told each partition count learnt
	rec        *kafkaconn.WriterRecorder // nil: no metrics

	byPart [][]int32 // scratch: indexes of a batch's hits by partition
	failed []int32   // scratch: indexes of the hits that failed
	held   []int32   // scratch: indexes of hits whose lane the topic does not show
	// shrunkSince is since when the topic has shown fewer partitions than
	// spooled hits' lanes name; zero when it does not.
	shrunkSince time.Time
	chunks      []chunk
}

// shrunkGrace is how long hits whose lane names a partition the topic does
// not show are held before they are sent by key instead.
const shrunkGrace = time.Minute

// chunk is one produce request's hits and its outcome.
type chunk struct {
	part  int
	idx   []int32
	bytes int // of the hits' keys and values, as sent
	err   error
}

// newProducer returns a producer of cfg's topic that waits for every
// in-sync replica. It has a transport of its own (not kafka-go's shared
// default), whose connections close releases, refreshing the topic's
// leaders every second (kafkaconn.NewTransport).
func newProducer(cfg KafkaConfig, l *lanes) *producer {
	own := kafkaconn.NewTransport(cfg.Topic)
	p := &producer{
		client: &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: own, Timeout: cfg.WriteTimeout},
		topic:  cfg.Topic,
		acks:   kafka.RequireAll,
		own:    own,
		lanes:  l,
	}
	p.partitions = kafkaconn.NewPartitions(p.client, p.topic)
	return p
}

// withMetrics makes the producer record its produce requests, and the
// writes that fail before any request, in m under its topic, and returns
// it.
func (p *producer) withMetrics(m *kafkaconn.WriterMetrics) *producer {
	p.rec = m.Topic(p.topic)
	return p
}

// close releases the connections of the producer's own transport.
func (p *producer) close() {
	if p.own != nil {
		p.own.CloseIdleConnections()
	}
}

// produce writes idx (indexes into recs, spooled hits) and returns the
// indexes of the hits Kafka did not acknowledge, with the first error. A
// partition's request is all or nothing: the broker appends a record batch
// whole or not at all. The returned slice is scratch space, valid until the
// next call.
func (p *producer) produce(ctx context.Context, recs [][]byte, idx []int32) ([]int32, error) {
	n, err := p.partitions.Count(ctx)
	if err != nil {
		p.rec.Failed()
		return idx, err
	}
	if cap(p.byPart) < n {
		p.byPart = make([][]int32, n)
	}
	p.byPart = p.byPart[:n]
	for i := range p.byPart {
		p.byPart[i] = p.byPart[i][:0]
	}
	if p.lanes != nil {
		if err := p.lanes.resize(n, true); err != nil {
			return idx, err
		}
	}
	p.held = p.held[:0]
	for _, i := range idx {
		// A hit goes to the partition its lane names; one spooled without
		// a lane by key.
		part := int(spooledLane(recs[i])) - 1
		switch {
		case part < 0:
			part = kafkaconn.PartitionOf(recs[i][:keyLen], n)
		case part >= n:
			// The topic shows fewer partitions than the lane names: most
			// likely a metadata answer of a broker still starting. The hit
			// is held and retried with fresh metadata; only when the topic
			// has shown fewer partitions for shrunkGrace (it was recreated
			// smaller) does it go by key, outside its lane.
			if p.shrunkSince.IsZero() {
				p.shrunkSince = time.Now()
			}
			if time.Since(p.shrunkSince) < shrunkGrace {
				p.held = append(p.held, i)
				continue
			}
			part = kafkaconn.PartitionOf(recs[i][:keyLen], n)
		}
		p.byPart[part] = append(p.byPart[part], i)
	}
	if len(p.held) == 0 {
		p.shrunkSince = time.Time{}
	}
	p.chunks = p.chunks[:0]
	for part, ix := range p.byPart {
		p.chunks = appendChunks(p.chunks, part, ix, recs, kafkaconn.ChunkRecords, kafkaconn.ChunkBytes)
	}
	if len(p.chunks) == 1 {
		p.chunks[0].err = p.send(ctx, recs, &p.chunks[0])
	} else {
		var wg sync.WaitGroup
		for i := range p.chunks {
			wg.Go(func() { p.chunks[i].err = p.send(ctx, recs, &p.chunks[i]) })
		}
		wg.Wait()
	}
	p.failed = p.failed[:0]
	var first error
	for _, c := range p.chunks {
		if c.err != nil {
			p.failed = append(p.failed, c.idx...)
			if first == nil {
				first = c.err
			}
		}
	}
	if len(p.held) > 0 {
		p.failed = append(p.failed, p.held...)
		if first == nil {
			first = fmt.Errorf("%d hits name partitions beyond the %d that %s shows: held for fresh metadata", len(p.held), n, p.topic)
		}
	}
	if first != nil {
		p.partitions.Forget() // ask the cluster again on the next call
	}
	return p.failed, first
}

// appendChunks cuts ix, the indexes of one partition's hits in recs, into
// chunks of at most maxRecords hits and maxBytes bytes (a single larger hit
// makes a chunk of its own), in order, and appends them to dst.
func appendChunks(dst []chunk, part int, ix []int32, recs [][]byte, maxRecords, maxBytes int) []chunk {
	for len(ix) > 0 {
		end, size := 0, 0
		for end < len(ix) && end < maxRecords && (end == 0 || size+len(recs[ix[end]]) <= maxBytes) {
			size += len(recs[ix[end]])
			end++
		}
		// The receive time and lane of the spooled header are not sent.
		dst = append(dst, chunk{part: part, idx: ix[:end], bytes: size - end*(headerLen-keyLen)})
		ix = ix[end:]
	}
	return dst
}

// send is one produce request.
func (p *producer) send(ctx context.Context, recs [][]byte, c *chunk) error {
	start := time.Now()
	err := kafkaconn.Send(ctx, p.client, p.topic, c.part, p.acks, p.codec, &hitRecords{recs: recs, idx: c.idx})
	p.rec.Request(len(c.idx), c.bytes, start, err)
	return err
}

// hitRecords reads spooled hits as Kafka records without copying them: the
// key is the hit's partition key, the value its RawHit, the time when the
// edge received it. kafka-go encodes each record before it asks for the
// next, so one Record and two readers serve them all.
type hitRecords struct {
	recs       [][]byte
	idx        []int32
	next       int
	rec        kafka.Record
	key, value kafkaconn.BytesReader
}

func (r *hitRecords) ReadRecord() (*kafka.Record, error) {
	if r.next >= len(r.idx) {
		return nil, io.EOF
	}
	b := r.recs[r.idx[r.next]]
	r.next++
	r.key.Reset(b[:keyLen])
	r.value.Reset(b[headerLen:])
	r.rec = kafka.Record{
		Time:  time.UnixMilli(spooledTime(b)),
		Key:   &r.key,
		Value: &r.value,
	}
	return &r.rec, nil
}
