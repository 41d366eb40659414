package counts

import (
	"errors"

	"github.com/pixelpipe/pixelpipe/hllstore"
)

// ErrNotAvailable means the counts a method would read are not kept.
var ErrNotAvailable = errors.New("not available yet")

// Dimensions a Breakdown splits counts by.
var Dimensions = hllstore.Dims()

// Share is one value of a breakdown or one entry of a top list.
type Share struct {
	Key     string
	Total   uint64
	Uniques uint64
}
