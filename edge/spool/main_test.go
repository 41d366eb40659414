package spool

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine (a sync loop, a
// segment preparer) outlives them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
