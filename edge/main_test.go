package edge

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/pixelpipe/pixelpipe/internal/pipetest"
)

// TestMain fails the package's tests when a goroutine outlives them. Not
// ours, and ignored besides kafka-go's pool: fasthttp's process-wide date
// updater, and the idle-worker cleaner of a fasthttp server, which sees the
// server's Shutdown only when it wakes up, MaxIdleWorkerDuration (10 s)
// later.
func TestMain(m *testing.M) {
	pipetest.VerifyNoLeaks(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	)
}
