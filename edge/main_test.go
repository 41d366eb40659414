package edge

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them. Not
// ours, and ignored: the idle connection pool of kafka-go's process-wide
// DefaultTransport (closed by no one); fasthttp's process-wide date updater;
// and the idle-worker cleaner of a fasthttp server, which sees the server's
// Shutdown only when it wakes up, MaxIdleWorkerDuration (10 s) later.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*connPool).discover"),
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*conn).run"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	)
}
