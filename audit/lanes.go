package audit

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Outcome is what the processor did with a hit.
type Outcome uint8

const (
	Event        Outcome = iota // written to the events topic
	DeadLettered                // written to the dead-letter topic
	Duplicate                   // a copy of a hit already seen, dropped
)

// Hit is what the audit reads of a raw hit.
type Hit struct {
	Node   string
	BootMs int64
	Seq    uint64
	// Lane is the partition the edge chose plus one; 0 when it chose none.
	Lane uint32
	// AtMs is the edge's receive time, Unix milliseconds.
	AtMs int64
}

// Gap is a run of numbers of a lane not seen.
type Gap struct {
	From, To uint64 // inclusive
	// AtMs is the receive time of the hit that revealed the gap (the first
	// seen after it): the missing hits were accepted at or before it.
	AtMs int64
}

// Figures are what the processor did with the hits of one node received in
// one minute.
type Figures struct {
	Events, DeadLettered, Duplicates int64
	// Unsequenced are hits without a lane (counted among the others, but
	// not checkable by number).
	Unsequenced int64
	// NewestMs is the newest receive time of the minute's events: once the
	// counts' watermark passed it, the minute's events are counted.
	NewestMs int64
}

type laneKey struct {
	node string
	boot int64
}

type lane struct {
	// first is the first number tracked: 1, or the first number seen for a
	// lane that may have started before this state did.
	first, max uint64
	newestMs   int64
	gaps       []Gap // by From
}

type minuteKey struct {
	minute int64 // Unix minutes
	node   string
}

type gapDay struct {
	lane laneKey
	day  int64 // Unix days
}

// Limits that bound a partition's audit state whatever the input.
const (
	// MaxGaps per lane: past it the oldest gap is forgotten (its numbers are
	// no longer checked; Forgotten counts them).
	MaxGaps = 4096
	// MaxLanes per partition: past it the lanes seen least recently are
	// forgotten.
	MaxLanes = 4096
	// LaneTTL is how long (event time) a lane with no hits is kept.
	LaneTTL = 7 * 24 * 60 * 60 * 1000
	// startSkewMs: a lane whose edge booted within this long after the
	// state began is tracked from its first number seen, not from 1 (its
	// first hits may sit before the state's first offset).
	startSkewMs = 10 * 60 * 1000
	// A number below a lane's first one is a reorder at the lane's start,
	// not a hit from before the state, when it is within reorderNumbers of
	// the lane's highest and was received at most reorderMs before the
	// lane's newest hit: an edge numbers hits as its handlers accept them
	// and appends them to its spool as they finish, so the first hits of a
	// lane can reach Kafka out of order.
	reorderNumbers = 64
	reorderMs      = 1000
)

// Partition is the audit state of one partition of the hits topic: a
// deterministic function of the partition's hits, like the processor's
// session state, plus the figures not yet written.
type Partition struct {
	id    int
	lanes map[laneKey]*lane
	// sinceMs is the receive time of the first hit this state saw; 0 before.
	sinceMs int64
	// from is the first offset whose hits are counted in pending: the
	// stored figures reflect the hits before it.
	from    int64
	pending map[minuteKey]*Figures
	changed map[gapDay]struct{}
	// Forgotten counts the numbers of gaps dropped past MaxGaps.
	Forgotten int64
}

// NewPartition returns the empty audit state of partition id.
func NewPartition(id int) *Partition {
	return &Partition{id: id, lanes: map[laneKey]*lane{}, pending: map[minuteKey]*Figures{}, changed: map[gapDay]struct{}{}}
}

// CountFrom makes hits at offsets below from uncounted: the stored figures
// already reflect them.
func (p *Partition) CountFrom(from int64) { p.from = from }

// Check records h, the hit at some offset of this partition, in its lane.
// It reports whether the hit is tracked by number (it has this partition's
// lane and a number the lane tracks) and whether it is a copy of a hit
// already seen, which the caller drops.
func (p *Partition) Check(h *Hit) (tracked, dup bool) {
	if p.sinceMs == 0 {
		p.sinceMs = max(h.AtMs, 1)
	}
	if h.Lane == 0 || int(h.Lane)-1 != p.id || h.Seq == 0 {
		return false, false
	}
	k := laneKey{h.Node, h.BootMs}
	l := p.lanes[k]
	if l == nil {
		first := uint64(1)
		if h.BootMs < p.sinceMs+startSkewMs {
			first = h.Seq
		}
		l = &lane{first: first, max: first - 1}
		p.lanes[k] = l
	}
	l.newestMs = max(l.newestMs, h.AtMs)
	switch {
	case h.Seq < l.first && l.max-h.Seq < reorderNumbers && h.AtMs+reorderMs >= l.newestMs:
		// The lane starts lower: the numbers in between are awaited.
		if h.Seq+1 < l.first {
			l.gaps = slices.Insert(l.gaps, 0, Gap{From: h.Seq + 1, To: l.first - 1, AtMs: h.AtMs})
		}
		l.first = h.Seq
		p.mark(k, h.AtMs)
		return true, false
	case h.Seq < l.first:
		return false, false
	case h.Seq > l.max:
		if h.Seq > l.max+1 {
			l.gaps = append(l.gaps, Gap{From: l.max + 1, To: h.Seq - 1, AtMs: h.AtMs})
			p.mark(k, h.AtMs)
			if len(l.gaps) > MaxGaps {
				g := l.gaps[0]
				p.Forgotten += int64(g.To - g.From + 1)
				l.first = g.To + 1
				l.gaps = slices.Delete(l.gaps, 0, 1)
				p.mark(k, g.AtMs)
			}
		}
		l.max = h.Seq
		return true, false
	}
	i, found := slices.BinarySearchFunc(l.gaps, h.Seq, func(g Gap, s uint64) int {
		switch {
		case g.To < s:
			return -1
		case g.From > s:
			return 1
		}
		return 0
	})
	if !found {
		return true, true
	}
	g := l.gaps[i]
	p.mark(k, g.AtMs)
	switch {
	case g.From == g.To:
		l.gaps = slices.Delete(l.gaps, i, i+1)
	case h.Seq == g.From:
		l.gaps[i].From++
	case h.Seq == g.To:
		l.gaps[i].To--
	default:
		l.gaps = slices.Insert(l.gaps, i+1, Gap{From: h.Seq + 1, To: g.To, AtMs: g.AtMs})
		l.gaps[i].To = h.Seq - 1
	}
	return true, false
}

func (p *Partition) mark(k laneKey, atMs int64) {
	p.changed[gapDay{k, atMs / dayMs}] = struct{}{}
}

const (
	minuteMs = 60 * 1000
	dayMs    = 24 * 60 * minuteMs
)

// Count adds the outcome of the hit at offset to the figures of its node
// and minute, unless the stored figures reflect that offset already.
func (p *Partition) Count(offset int64, h *Hit, o Outcome, tracked bool) {
	if offset < p.from {
		return
	}
	k := minuteKey{h.AtMs / minuteMs, h.Node}
	f := p.pending[k]
	if f == nil {
		f = &Figures{}
		p.pending[k] = f
	}
	switch o {
	case Event:
		f.Events++
		f.NewestMs = max(f.NewestMs, h.AtMs)
	case DeadLettered:
		f.DeadLettered++
	case Duplicate:
		f.Duplicates++
	}
	if !tracked && o != Duplicate {
		f.Unsequenced++
	}
}

// Missing is the number of hits in the gaps of every lane.
func (p *Partition) Missing() int64 {
	var n int64
	for _, l := range p.lanes {
		for _, g := range l.gaps {
			n += int64(g.To - g.From + 1)
		}
	}
	return n
}

// Lanes is the number of lanes held.
func (p *Partition) Lanes() int { return len(p.lanes) }

// Expire forgets the lanes with no hit within LaneTTL of watermarkMs (their
// gaps stay in Redis as last written), and the least recent lanes past
// MaxLanes. The order depends on the state alone, so a replay forgets the
// same lanes.
func (p *Partition) Expire(watermarkMs int64) {
	for k, l := range p.lanes {
		if l.newestMs < watermarkMs-LaneTTL {
			delete(p.lanes, k)
		}
	}
	if len(p.lanes) <= MaxLanes {
		return
	}
	keys := make([]laneKey, 0, len(p.lanes))
	for k := range p.lanes {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b laneKey) int {
		return cmp.Or(cmp.Compare(p.lanes[a].newestMs, p.lanes[b].newestMs), cmp.Compare(a.boot, b.boot), strings.Compare(a.node, b.node))
	})
	for _, k := range keys[:len(keys)-MaxLanes] {
		delete(p.lanes, k)
	}
}

// Op is one change to a field of an audit hash.
type Op struct {
	Field string
	// Kind is 'i' (add Value's numbers to the field's), 's' (set it to
	// Value) or 'd' (delete it).
	Kind  byte
	Value string
}

// Write is the changes to one audit hash.
type Write struct {
	Key string
	Ops []Op
}

// Writes returns the changes since the last Written: the figures to add and
// the gap lists to replace, grouped by hash; key names the hash of a UTC day
// (Unix days).
func (p *Partition) Writes(key func(day int64) string) []Write {
	byDay := map[int64]int{} // day -> index in out
	var out []Write
	at := func(day int64) *Write {
		i, ok := byDay[day]
		if !ok {
			i = len(out)
			byDay[day] = i
			out = append(out, Write{Key: key(day)})
		}
		return &out[i]
	}
	for k, f := range p.pending {
		w := at(k.minute * minuteMs / dayMs)
		w.Ops = append(w.Ops, Op{Field: minuteField(k.minute, k.node), Kind: 'i', Value: formatFigures(*f)})
	}
	for c := range p.changed {
		w := at(c.day)
		field := gapField(c.lane.boot, c.lane.node)
		var b []byte
		if l := p.lanes[c.lane]; l != nil {
			for _, g := range l.gaps {
				if g.AtMs/dayMs != c.day {
					continue
				}
				if len(b) > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendUint(b, g.From, 10)
				b = append(b, '-')
				b = strconv.AppendUint(b, g.To, 10)
				b = append(b, '@')
				b = strconv.AppendInt(b, g.AtMs, 10)
			}
		}
		if len(b) == 0 {
			w.Ops = append(w.Ops, Op{Field: field, Kind: 'd'})
		} else {
			w.Ops = append(w.Ops, Op{Field: field, Kind: 's', Value: string(b)})
		}
	}
	return out
}

// Written says the changes of Writes are stored, at the position next.
func (p *Partition) Written(next int64) {
	clear(p.pending)
	clear(p.changed)
	p.from = next
}

func minuteField(minute int64, node string) string {
	return "m|" + strconv.FormatInt(minute, 10) + "|" + node
}

func gapField(boot int64, node string) string {
	return "g|" + strconv.FormatInt(boot, 10) + "|" + node
}

func formatFigures(f Figures) string {
	return strconv.FormatInt(f.Events, 10) + " " + strconv.FormatInt(f.DeadLettered, 10) + " " +
		strconv.FormatInt(f.Duplicates, 10) + " " + strconv.FormatInt(f.Unsequenced, 10) + " " + strconv.FormatInt(f.NewestMs, 10)
}
