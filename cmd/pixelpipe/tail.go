package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// cmdTail prints the records of a pipeline topic as JSON lines: protobuf
// values through protojson, dead letters with their reason and source.
func cmdTail(ctx context.Context, args []string, stdout io.Writer) error {
	var c common
	fs := newFlagSet("tail", "pixelpipe tail -kafka.brokers=127.0.0.1:19092 -from=start -n=10 pixel.events.v1 | jq .contentId")
	c.bindKafka(fs)
	from := fs.String("from", "end", "where to start in each partition: end (new records only) or start")
	n := fs.Int("n", 0, "stop after this many records; 0 = follow until Ctrl-C")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("give one topic: " + strings.Join(topicNames(), ", "))
	}
	name := fs.Arg(0)
	base := strings.TrimPrefix(name, c.topicPrefix)
	decode, ok := decoders[base]
	if !ok {
		return fmt.Errorf("topic %q: use one of %s (with -kafka.topicPrefix if set)", name, strings.Join(topicNames(), ", "))
	}
	start := kafka.LastOffset
	switch *from {
	case "start":
		start = kafka.FirstOffset
	case "end":
	default:
		return fmt.Errorf("-from %q: use start or end", *from)
	}
	brokers := c.kafka().Brokers
	conn, err := kafka.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return fmt.Errorf("dial kafka %s: %w", brokers[0], err)
	}
	parts, err := conn.ReadPartitions(c.topic(base))
	conn.Close()
	if err != nil {
		return fmt.Errorf("read partitions of %s: %w", c.topic(base), err)
	}
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lines := make(chan []byte, 64)
	var wg sync.WaitGroup
	errc := make(chan error, len(parts))
	for _, p := range parts {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: c.topic(base), Partition: p, MaxBytes: 4 << 20})
			defer r.Close()
			if err := r.SetOffset(start); err != nil {
				errc <- err
				return
			}
			for {
				m, err := r.FetchMessage(tctx)
				if err != nil {
					if tctx.Err() == nil {
						errc <- fmt.Errorf("read partition %d: %w", p, err)
					}
					return
				}
				b, err := decode(m)
				if err != nil {
					b, _ = json.Marshal(map[string]any{"partition": m.Partition, "offset": m.Offset, "decode_error": err.Error(), "value_base64": base64.StdEncoding.EncodeToString(m.Value)})
				}
				select {
				case lines <- b:
				case <-tctx.Done():
					return
				}
			}
		}(p.ID)
	}
	go func() { wg.Wait(); close(lines) }()
	count := 0
	for {
		select {
		case err := <-errc:
			cancel()
			return err
		case b, ok := <-lines:
			if !ok {
				return nil
			}
			if _, err := fmt.Fprintf(stdout, "%s\n", b); err != nil {
				return err
			}
			count++
			if *n > 0 && count >= *n {
				cancel()
				for range lines {
				}
				return nil
			}
		}
	}
}

func protoDecoder(newMsg func() proto.Message) func(kafka.Message) ([]byte, error) {
	return func(m kafka.Message) ([]byte, error) {
		msg := newMsg()
		if err := proto.Unmarshal(m.Value, msg); err != nil {
			return nil, err
		}
		return protojson.MarshalOptions{UseProtoNames: false}.Marshal(msg)
	}
}

var decoders = map[string]func(kafka.Message) ([]byte, error){
	schemas.TopicHits:     protoDecoder(func() proto.Message { return &pixelpb.RawHit{} }),
	schemas.TopicEvents:   protoDecoder(func() proto.Message { return &pixelpb.Event{} }),
	schemas.TopicSessions: protoDecoder(func() proto.Message { return &pixelpb.Session{} }),
	schemas.TopicCounts:   protoDecoder(func() proto.Message { return &pixelpb.CountSnapshot{} }),
	schemas.TopicDLQ: func(m kafka.Message) ([]byte, error) {
		out := map[string]any{"partition": m.Partition, "offset": m.Offset, "value_base64": base64.StdEncoding.EncodeToString(m.Value)}
		for _, h := range m.Headers {
			out[h.Key] = string(h.Value)
		}
		return json.Marshal(out)
	},
}

func topicNames() []string {
	var out []string
	for _, t := range schemas.Topics() {
		out = append(out, t.Name)
	}
	return out
}
