//go:build integration

package processor

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// noHistory stands for the hits topic of a processor that only transforms
// batches handed to it in a test: no hit comes before them.
type noHistory struct{}

func (noHistory) Read(_ context.Context, partition int, from, to int64, _ func(*kafka.Message) error) (int64, error) {
	return from, fmt.Errorf("partition %d [%d, %d): this test has no hits topic", partition, from, to)
}

func (noHistory) OffsetAt(context.Context, int, time.Time) (int64, error) { return -1, nil }
