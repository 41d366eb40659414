package counts

import (
	"context"
	"errors"
	"time"
)

// ErrNotAvailable means the counts a method would read are not written by
// the aggregator yet: daily breakdowns and the top-N index.
var ErrNotAvailable = errors.New("not available yet")

// Dimensions a Breakdown splits counts by.
var Dimensions = []string{"country", "device", "browser", "os", "source"}

// Share is one value of a breakdown or one entry of a top list.
type Share struct {
	Key     string
	Total   uint64
	Uniques uint64
}

// Breakdown splits the human views of sc over [From, To) by dimension
// (one of Dimensions), largest first, at most limit entries.
//
// It returns ErrNotAvailable until the aggregator writes daily breakdown
// records; the query API answers 501 meanwhile.
func (r *Reader) Breakdown(ctx context.Context, sc Scope, dimension string, limit int) ([]Share, error) {
	if _, _, err := r.validate(sc); err != nil {
		return nil, err
	}
	return nil, ErrNotAvailable
}

// Top lists the content ids with the most uniques or views ("uniques" or
// "views") over [from, to), those accepted by allow only, at most limit.
//
// It returns ErrNotAvailable until the aggregator writes its per-day top-N
// index; the query API answers 501 meanwhile.
func (r *Reader) Top(ctx context.Context, from, to time.Time, by string, limit int, allow func(string) bool) ([]Share, error) {
	if _, _, err := r.validate(Scope{ContentID: "top", From: from, To: to}); err != nil {
		return nil, err
	}
	return nil, ErrNotAvailable
}
