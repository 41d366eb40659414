// Package kafkaconn builds the kafka-go readers and writers of every part from
// one Config, with the settings the pipeline's guarantees depend on (acks from
// all in-sync replicas, keyed partitioning, explicit commits), routes kafka-go's
// logs to slog, and creates the pipeline's topics.
package kafkaconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pixelpipe/pixelpipe/schemas"
)

// Config is how a part reaches Kafka.
type Config struct {
	// Brokers are bootstrap addresses, host:port. Required.
	Brokers []string
	// ReplicationFactor of topics created by EnsureTopics. Default 1, right
	// for one broker; use 3 on a real cluster.
	ReplicationFactor int
}

// ParseBrokers splits a comma-separated broker list.
func ParseBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka.brokers: at least one broker address is required")
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return fmt.Errorf("kafka.brokers: %q is not host:port", b)
		}
	}
	return nil
}

// NewWriter returns a synchronous writer for topic. Every write waits for the
// acknowledgement of all in-sync replicas (kafka-go defaults to none), messages
// are partitioned by key with the sarama-compatible hash, and topics are never
// created on the fly. Callers batch messages themselves and hand whole batches
// to WriteMessages.
func NewWriter(c Config, topic string, logger *slog.Logger) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(c.Brokers...),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		// kafka-go allocates a BatchSize-long slice for every partition of
		// every write, so this stays small; callers that hand over larger
		// batches size it to them.
		BatchSize:              1_000,
		BatchBytes:             16 << 20,
		BatchTimeout:           time.Millisecond,
		WriteTimeout:           10 * time.Second,
		ReadTimeout:            10 * time.Second,
		MaxAttempts:            3,
		AllowAutoTopicCreation: false,
		Logger:                 Logger(logger, slog.LevelDebug),
		ErrorLogger:            Logger(logger, slog.LevelWarn),
	}
}

// NewGroupReader returns a consumer-group reader of topic. Offsets are only
// committed by explicit CommitMessages calls (CommitInterval 0), never by
// ReadMessage, so callers commit after their side effects are durable.
func NewGroupReader(c Config, topic, group string, logger *slog.Logger) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:                c.Brokers,
		Topic:                  topic,
		GroupID:                group,
		MinBytes:               1,
		MaxBytes:               8 << 20,
		MaxWait:                250 * time.Millisecond,
		ReadBatchTimeout:       250 * time.Millisecond,
		CommitInterval:         0,
		StartOffset:            kafka.FirstOffset,
		HeartbeatInterval:      time.Second,
		SessionTimeout:         10 * time.Second,
		RebalanceTimeout:       10 * time.Second,
		JoinGroupBackoff:       500 * time.Millisecond,
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 5 * time.Second,
		Logger:                 Logger(logger, slog.LevelDebug),
		ErrorLogger:            Logger(logger, slog.LevelWarn),
	})
}

// Logger adapts slog to kafka-go's Printf-style logger at one level.
func Logger(l *slog.Logger, level slog.Level) kafka.LoggerFunc {
	if l == nil {
		return func(string, ...any) {}
	}
	return func(format string, args ...any) {
		if !l.Enabled(context.Background(), level) {
			return
		}
		l.Log(context.Background(), level, "kafka client", "detail", fmt.Sprintf(format, args...))
	}
}

// EnsureTopics creates the topics that do not exist yet and waits until every
// partition of every topic has a leader. Existing topics are left as they are.
func EnsureTopics(ctx context.Context, c Config, specs []schemas.TopicSpec) error {
	rf := c.ReplicationFactor
	if rf <= 0 {
		rf = 1
	}
	client := &kafka.Client{Addr: kafka.TCP(c.Brokers...), Timeout: 15 * time.Second}
	req := &kafka.CreateTopicsRequest{}
	for _, s := range specs {
		tc := kafka.TopicConfig{Topic: s.Name, NumPartitions: s.Partitions, ReplicationFactor: rf}
		if s.Compacted {
			tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: "cleanup.policy", ConfigValue: "compact"})
		}
		if rf > 1 {
			tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: "min.insync.replicas", ConfigValue: strconv.Itoa(rf - 1)})
		}
		req.Topics = append(req.Topics, tc)
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("create topics on %v: %w", c.Brokers, err)
	}
	for name, terr := range resp.Errors {
		if terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", name, terr)
		}
	}
	names := make([]string, 0, len(specs))
	for _, s := range specs {
		names = append(names, s.Name)
	}
	for {
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
		if err == nil && topicsReady(md, specs) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for topic leaders of %v: %w (last metadata error: %v)", names, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func topicsReady(md *kafka.MetadataResponse, specs []schemas.TopicSpec) bool {
	have := map[string]kafka.Topic{}
	for _, t := range md.Topics {
		have[t.Name] = t
	}
	for _, s := range specs {
		t, ok := have[s.Name]
		if !ok || t.Error != nil || len(t.Partitions) == 0 {
			return false
		}
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.ID < 0 || p.Leader.Host == "" {
				return false
			}
		}
	}
	return true
}

// DeadLetter wraps a record that cannot be used for the dead-letter topic
// (schemas.TopicDLQ): the original key and bytes, the reason in the "reason"
// header and "<topic>/<partition>/<offset>" in the "source" header.
func DeadLetter(src *kafka.Message, reason string) kafka.Message {
	return kafka.Message{
		Key:   src.Key,
		Value: src.Value,
		Headers: []kafka.Header{
			{Key: "reason", Value: []byte(reason)},
			{Key: "source", Value: []byte(src.Topic + "/" + strconv.Itoa(src.Partition) + "/" + strconv.FormatInt(src.Offset, 10))},
		},
	}
}
