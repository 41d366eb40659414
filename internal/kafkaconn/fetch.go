package kafkaconn

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// FetchErrors is how a part lives through the errors its group reader's
// FetchMessage reports while a broker is away. kafka-go's reader retries a
// partition whose leader it cannot reach (a broker killed, leadership
// moving to another one) by itself and, after a few attempts, also hands
// the error to FetchMessage; the next call goes on where the reader is. So
// such an error is not the end of the part: it is counted in
// pixel_kafka_reader_fetch_errors_total{part,topic}, logged at most every
// 10 s with how many were held back, and followed by a pause (100 ms,
// doubling to 1 s while errors follow each other) so a reader that fails
// at once does not spin. Only io.EOF, a closed reader, is final.
type FetchErrors struct {
	errors  prometheus.Counter
	logger  *slog.Logger
	topic   string
	streak  int
	lastLog time.Time
	held    int
}

const fetchErrorLogEvery = 10 * time.Second

// NewFetchErrors returns the fetch error handling of part's reader of topic,
// its counter registered with reg (kept unexported with a nil reg).
func NewFetchErrors(reg prometheus.Registerer, part, topic string, logger *slog.Logger) *FetchErrors {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name:        "pixel_kafka_reader_fetch_errors_total",
		Help:        "Errors the part's consumer-group reader reported while fetching from the topic (a partition leader unreachable, leadership moving); the reader retries by itself and nothing is skipped.",
		ConstLabels: prometheus.Labels{"part": part, "topic": topic},
	})
	if reg != nil {
		reg.MustRegister(c)
	}
	return &FetchErrors{errors: c, logger: logger, topic: topic}
}

// Failed records err and pauses (until ctx ends at the latest). It returns
// err when the reader is closed, nil when fetching may go on.
func (f *FetchErrors) Failed(ctx context.Context, err error) error {
	if errors.Is(err, io.EOF) {
		return err
	}
	f.errors.Inc()
	if now := time.Now(); now.Sub(f.lastLog) >= fetchErrorLogEvery {
		f.logger.Warn("kafka fetch failed; the reader retries", "topic", f.topic, "err", err, "held_back", f.held)
		f.lastLog, f.held = now, 0
	} else {
		f.held++
	}
	pause := min(100*time.Millisecond<<min(f.streak, 4), time.Second)
	f.streak++
	t := time.NewTimer(pause)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return nil
}

// OK ends a run of errors: the next one pauses briefly again.
func (f *FetchErrors) OK() { f.streak = 0 }
