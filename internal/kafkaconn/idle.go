package kafkaconn

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// GroupIdle tells which partitions of a topic a consumer group has nothing
// unread in, whoever in the group owns them.
type GroupIdle struct {
	c            Config
	topic, group string
}

// NewGroupIdle returns the idle check of group on topic.
func NewGroupIdle(c Config, topic, group string) *GroupIdle {
	return &GroupIdle{c: c, topic: topic, group: group}
}

// Idle returns those of partitions whose committed offset for the group is
// their end offset, or that hold no record and have no commit.
func (g *GroupIdle) Idle(ctx context.Context, partitions []int) ([]int, error) {
	client := &kafka.Client{Addr: kafka.TCP(g.c.Brokers...), Timeout: 10 * time.Second}
	reqs := make([]kafka.OffsetRequest, 0, 2*len(partitions))
	for _, p := range partitions {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	lo, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{g.topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("offsets of %s: %w", g.topic, err)
	}
	of, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: g.group, Topics: map[string][]int{g.topic: partitions}})
	if err != nil {
		return nil, fmt.Errorf("committed offsets of %s in group %s: %w", g.topic, g.group, err)
	}
	if of.Error != nil {
		return nil, fmt.Errorf("committed offsets of %s in group %s: %w", g.topic, g.group, of.Error)
	}
	committed := map[int]int64{}
	for _, p := range of.Topics[g.topic] {
		if p.Error == nil {
			committed[p.Partition] = p.CommittedOffset
		}
	}
	var idle []int
	for _, p := range lo.Topics[g.topic] {
		if p.Error != nil {
			continue
		}
		c, ok := committed[p.Partition]
		if (ok && c >= 0 && c >= p.LastOffset) || ((!ok || c < 0) && p.FirstOffset == p.LastOffset) {
			idle = append(idle, p.Partition)
		}
	}
	return idle, nil
}
