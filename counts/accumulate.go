package counts

import (
	"fmt"

	"github.com/axiomhq/hyperloglog"

	"github.com/pixelpipe/pixelpipe/hllstore"
)

// accumulator adds records into one Result: totals summed, sketches merged.
type accumulator struct {
	res    Result
	sketch *hyperloglog.Sketch
}

func newAccumulator() *accumulator { return &accumulator{} }

func (a *accumulator) add(rec *hllstore.Record) error {
	a.res.Total += rec.Total
	if rec.Total > 0 || rec.Version > 0 {
		if a.sketch == nil {
			a.sketch = hllstore.NewSketch()
		}
		if err := a.sketch.Merge(rec.Sketch); err != nil {
			return fmt.Errorf("merge sketches: %w", err)
		}
	}
	for reason, n := range rec.Reasons {
		if a.res.Reasons == nil {
			a.res.Reasons = map[string]uint64{}
		}
		a.res.Reasons[reason] += n
	}
	a.res.Orders += rec.NOrders
	for cur, v := range rec.Value {
		if a.res.Value == nil {
			a.res.Value = map[string]int64{}
		}
		a.res.Value[cur] += v
	}
	return nil
}

func (a *accumulator) result() Result {
	res := a.res
	if a.sketch != nil {
		res.Uniques = a.sketch.Estimate()
		res.UniquesBound = Bound(a.sketch)
	}
	return res
}
