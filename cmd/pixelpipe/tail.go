package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// cmdTail prints a pipeline topic as JSON lines: each record decoded with
// its schema and printed with protojson (field names as in the .proto
// files), so a downstream reader sees exactly the contract. It reads every
// partition directly, without a consumer group, and commits nothing.
func cmdTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlagSet("tail", "TOPIC", "pixelpipe tail -kafka.brokers=127.0.0.1:19092 -n=10 events\n\n  TOPIC: "+tailTopicsHelp+".\n  Each record is one JSON line: the protojson form of its schema (schemas/proto, field names\n  as in the .proto files; 64-bit integers as strings); a dead letter is\n  {\"value_base64\":...,\"headers\":{\"reason\":...,\"source\":\"TOPIC/PARTITION/OFFSET\"}}.")
	c.bindKafka(fs)
	from := fs.String("from", "start", "where to start in each partition: start (oldest kept record) or end (only new records)")
	limit := fs.Int("n", 0, "stop after this many records; 0 = no limit")
	follow := fs.Bool("follow", false, "keep waiting for new records instead of stopping at the end of every partition")
	meta := fs.Bool("meta", false, "wrap each record as {\"partition\",\"offset\",\"key\",\"time\",\"value\"} (key base64)")
	if err := parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("give exactly one TOPIC: " + tailTopicsHelp)
	}
	if *from != "start" && *from != "end" {
		return fmt.Errorf("-from=%q: use start or end", *from)
	}
	if err := c.kafka().Validate(); err != nil {
		return err
	}
	topic, newMsg, err := resolveTopic(fs.Arg(0), c.topicPrefix)
	if err != nil {
		return err
	}

	client := &kafka.Client{Addr: kafka.TCP(c.kafka().Brokers...), Timeout: 15 * time.Second}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return fmt.Errorf("metadata of %s from %s: %w", topic, c.brokers, err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		var reason error = errors.New("not in the broker's metadata")
		if len(md.Topics) == 1 {
			reason = md.Topics[0].Error
		}
		return fmt.Errorf("topic %s on %s: %w (create the topics with pixelpipe topics, or check -kafka.topicPrefix)", topic, c.brokers, reason)
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, p := range md.Topics[0].Partitions {
		req.Topics[topic] = append(req.Topics[topic], kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	offs, err := client.ListOffsets(ctx, req)
	if err != nil {
		return fmt.Errorf("offsets of %s: %w", topic, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make(chan kafka.Message, 256)
	var wg sync.WaitGroup
	for _, po := range offs.Topics[topic] {
		if po.Error != nil {
			return fmt.Errorf("offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		start, end := po.FirstOffset, po.LastOffset // end: the next offset to be written
		if *from == "end" {
			start = end
		}
		if start >= end && !*follow {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: c.kafka().Brokers, Topic: topic, Partition: po.Partition,
			MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 250 * time.Millisecond,
		})
		if err := r.SetOffset(start); err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					return
				}
				select {
				case out <- m:
				case <-ctx.Done():
					return
				}
				if !*follow && m.Offset >= end-1 {
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(out) }()

	w := bufio.NewWriter(stdout)
	defer w.Flush()
	opts := protojson.MarshalOptions{UseProtoNames: true}
	n := 0
	for m := range out {
		if kafkaconn.IsClockTick(&m) {
			continue // the processors' clock, not a hit
		}
		line, err := encodeRecord(opts, newMsg, m, *meta)
		if err != nil {
			return fmt.Errorf("%s/%d/%d: %w", m.Topic, m.Partition, m.Offset, err)
		}
		w.Write(line)
		w.WriteByte('\n')
		if *follow {
			w.Flush()
		}
		if n++; *limit > 0 && n >= *limit {
			break
		}
	}
	cancel()
	return nil
}

// tailTopics are the topics tail decodes: short name, topic, record type
// (nil: a dead letter, printed as its bytes and headers).
var tailTopics = []struct {
	short, topic string
	msg          func() proto.Message
}{
	{"hits", schemas.TopicHits, func() proto.Message { return new(pixelpb.RawHit) }},
	{"events", schemas.TopicEvents, func() proto.Message { return new(pixelpb.Event) }},
	{"sessions", schemas.TopicSessions, func() proto.Message { return new(pixelpb.Session) }},
	{"counts", schemas.TopicCounts, func() proto.Message { return new(pixelpb.CountSnapshot) }},
	{"dlq", schemas.TopicDLQ, nil},
}

const tailTopicsHelp = "hits, events, sessions, counts, dlq (with -kafka.topicPrefix), or a full topic name ending in pixel.hits.v1, pixel.events.v1, pixel.sessions.v1, pixel.counts.v1 or pixel.dlq.v1"

// resolveTopic maps TOPIC to the topic to read and its record type: a short
// name gets the topic prefix; a full topic name is taken as it is.
func resolveTopic(name, prefix string) (string, func() proto.Message, error) {
	for _, t := range tailTopics {
		switch {
		case name == t.short:
			return prefix + t.topic, t.msg, nil
		case name == t.topic || strings.HasSuffix(name, "."+t.topic):
			return name, t.msg, nil
		}
	}
	return "", nil, fmt.Errorf("unknown topic %q: use %s", name, tailTopicsHelp)
}

func encodeRecord(opts protojson.MarshalOptions, newMsg func() proto.Message, m kafka.Message, meta bool) ([]byte, error) {
	var value json.RawMessage
	if newMsg != nil {
		msg := newMsg()
		if err := proto.Unmarshal(m.Value, msg); err != nil {
			return nil, err
		}
		b, err := opts.Marshal(msg)
		if err != nil {
			return nil, err
		}
		// protojson varies its whitespace on purpose; compact output is
		// the same on every run.
		var buf bytes.Buffer
		if err := json.Compact(&buf, b); err != nil {
			return nil, err
		}
		value = buf.Bytes()
	} else {
		headers := map[string]string{}
		for _, h := range m.Headers {
			headers[h.Key] = string(h.Value)
		}
		b, err := json.Marshal(map[string]any{"value_base64": m.Value, "headers": headers})
		if err != nil {
			return nil, err
		}
		value = b
	}
	if !meta {
		return value, nil
	}
	return json.Marshal(struct {
		Partition int             `json:"partition"`
		Offset    int64           `json:"offset"`
		Key       string          `json:"key"`
		Time      time.Time       `json:"time"`
		Value     json.RawMessage `json:"value"`
	}{m.Partition, m.Offset, base64.StdEncoding.EncodeToString(m.Key), m.Time, value})
}
