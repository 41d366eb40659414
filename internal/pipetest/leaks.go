package pipetest

import (
	"testing"

	"go.uber.org/goleak"
)

// VerifyNoLeaks is a TestMain that fails the package's tests when a
// goroutine outlives them. The idle connection pool of kafka-go's
// process-wide DefaultTransport (shared by every kafka.Client and Writer of
// the process, closed by no one) is not a leak of ours and is ignored; opts
// ignore more.
func VerifyNoLeaks(m *testing.M, opts ...goleak.Option) {
	goleak.VerifyTestMain(m, append([]goleak.Option{
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*connPool).discover"),
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*conn).run"),
	}, opts...)...)
}
