package processor

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them. The
// idle connection pool of kafka-go's process-wide DefaultTransport (shared by
// every kafka.Client and Writer of the process, closed by no one) is not a
// leak of ours.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*connPool).discover"),
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*conn).run"),
	)
}

// noHistory stands for the hits topic of a processor that only transforms
// batches handed to it in a test: no hit comes before them.
type noHistory struct{}

func (noHistory) Read(_ context.Context, partition int, from, to int64, _ func(*kafka.Message) error) (int64, error) {
	return from, fmt.Errorf("partition %d [%d, %d): this test has no hits topic", partition, from, to)
}

func (noHistory) OffsetAt(context.Context, int, time.Time) (int64, error) { return -1, nil }
