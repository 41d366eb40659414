package counts

import "github.com/pixelpipe/pixelpipe/hllstore"

// Dimensions a Breakdown splits counts by.
var Dimensions = hllstore.Dims()

// Share is one value of a breakdown or one entry of a top list.
type Share struct {
	Key     string
	Total   uint64
	Uniques uint64
	// UniquesBound is the half-width of Uniques' error band, as
	// Result.UniquesBound.
	UniquesBound uint64
}
