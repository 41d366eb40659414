package processor

import (
	"testing"

	"github.com/pixelpipe/pixelpipe/internal/pipetest"
)

func TestMain(m *testing.M) { pipetest.VerifyNoLeaks(m) }
