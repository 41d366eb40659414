package query

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine (a server, a live
// counts poller) outlives them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
