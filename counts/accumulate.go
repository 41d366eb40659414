package counts

import (
	"fmt"

	"github.com/axiomhq/hyperloglog"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/money"
)

// accumulator adds records into one Result: totals summed, sketches merged.
type accumulator struct {
	res    Result
	sketch *hyperloglog.Sketch
}

func newAccumulator() *accumulator { return &accumulator{} }

func (a *accumulator) add(rec *hllstore.Count) error {
	a.res.Total += rec.Total
	if rec.Total > 0 || rec.Version > 0 {
		if a.sketch == nil {
			// Take the record's sketch over: records are read per query.
			a.sketch = rec.Sketch
			return a.addRest(rec)
		}
		if err := a.sketch.Merge(rec.Sketch); err != nil {
			return fmt.Errorf("merge sketches: %w", err)
		}
	}
	return a.addRest(rec)
}

// addRest adds what a record holds besides its total and sketch: reasons,
// orders, value and named sums.
func (a *accumulator) addRest(rec *hllstore.Count) error {
	addCounts(&a.res.Reasons, rec.Reasons)
	addCounts(&a.res.Sums, rec.Sums)
	a.res.Orders += rec.NOrders
	for cur, v := range rec.Value {
		if a.res.Value == nil {
			a.res.Value = map[string]money.Sum{}
		}
		s := a.res.Value[cur]
		s.AddSum(v)
		a.res.Value[cur] = s
	}
	return nil
}

// addAll adds recs, dense sketches first: once the merged sketch is dense,
// sparse ones merge register by register instead of through the sparse
// list, and the result is the same (a union with a dense sketch is dense).
func (a *accumulator) addAll(recs []hllstore.Count, idx []int) error {
	for pass := range 2 {
		for _, i := range idx {
			if recs[i].DenseSketch() == (pass == 0) {
				if err := a.add(&recs[i]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (a *accumulator) result() Result {
	res := a.res
	if a.sketch != nil {
		res.Uniques, res.UniquesBound = estimate(a.sketch)
	}
	return res
}

// addCounts adds the counts of o into *m, making *m when needed.
func addCounts(m *map[string]uint64, o map[string]uint64) {
	for k, n := range o {
		if *m == nil {
			*m = map[string]uint64{}
		}
		(*m)[k] += n
	}
}
