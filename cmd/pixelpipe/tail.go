package main

import (
	"bufio"
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

	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// cmdTail prints a pipeline topic as JSON lines: each record decoded with
// its schema and printed with protojson (field names as in the .proto
// files), so a downstream reader sees exactly the contract. It reads every
// partition directly, without a consumer group, and commits nothing.
func cmdTail(ctx context.Context, args []string, stdout io.Writer) error {
	var c common
	fs := newFlagSet("tail", "pixelpipe tail -kafka.brokers=127.0.0.1:19092 -n=10 events   (TOPIC: hits, events, sessions, counts, dlq, or a full topic name)")
	c.bindKafka(fs)
	from := fs.String("from", "start", "where to start in each partition: start (oldest kept record) or end (only new records)")
	limit := fs.Int("n", 0, "stop after this many records; 0 = no limit")
	follow := fs.Bool("follow", false, "keep waiting for new records instead of stopping at the end of every partition")
	meta := fs.Bool("meta", false, "wrap each record as {\"partition\",\"offset\",\"key\",\"time\",\"value\"} (key base64)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("tail: give exactly one TOPIC (hits, events, sessions, counts, dlq, or a full topic name)")
	}
	if *from != "start" && *from != "end" {
		return fmt.Errorf("tail: -from=%q: use start or end", *from)
	}
	if err := c.kafka().Validate(); err != nil {
		return err
	}
	topic, newMsg := resolveTopic(fs.Arg(0))
	topic = c.topic(topic)

	client := &kafka.Client{Addr: kafka.TCP(c.kafka().Brokers...), Timeout: 15 * time.Second}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return fmt.Errorf("tail: metadata of %s: %w", topic, err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		return fmt.Errorf("tail: topic %s: %v", topic, md.Topics[0].Error)
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, p := range md.Topics[0].Partitions {
		req.Topics[topic] = append(req.Topics[topic], kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	offs, err := client.ListOffsets(ctx, req)
	if err != nil {
		return fmt.Errorf("tail: offsets of %s: %w", topic, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make(chan kafka.Message, 256)
	var wg sync.WaitGroup
	for _, po := range offs.Topics[topic] {
		if po.Error != nil {
			return fmt.Errorf("tail: offsets of %s/%d: %w", topic, po.Partition, po.Error)
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
		line, err := encodeRecord(opts, newMsg, m, *meta)
		if err != nil {
			return fmt.Errorf("tail: %s/%d/%d: %w", m.Topic, m.Partition, m.Offset, err)
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

// resolveTopic maps a short name to the topic and its record type; a dead
// letter (or an unknown topic) has no type and is printed as its raw bytes.
func resolveTopic(name string) (string, func() proto.Message) {
	for short, t := range map[string]struct {
		topic string
		msg   func() proto.Message
	}{
		"hits":     {schemas.TopicHits, func() proto.Message { return new(pixelpb.RawHit) }},
		"events":   {schemas.TopicEvents, func() proto.Message { return new(pixelpb.Event) }},
		"sessions": {schemas.TopicSessions, func() proto.Message { return new(pixelpb.Session) }},
		"counts":   {schemas.TopicCounts, func() proto.Message { return new(pixelpb.CountSnapshot) }},
		"dlq":      {schemas.TopicDLQ, nil},
	} {
		if name == short || name == t.topic || strings.HasSuffix(name, "."+t.topic) {
			if name == short {
				return t.topic, t.msg
			}
			return name, t.msg
		}
	}
	return name, nil
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
		value = b
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
