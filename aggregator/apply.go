package aggregator

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// dayEntry is a content id's day held in memory.
type dayEntry struct {
	d *hllstore.Day
	// recs holds d's records (d.Records), each with the aggregator's marks.
	recs map[hllstore.RecordID]*record
	// campaigns lists the campaigns with records in d (at most
	// Config.MaxCampaigns).
	campaigns map[string]struct{}
	dirty     bool // records changed since the last flush
	bdirty    bool // breakdowns changed since the last detail flush
	touched   time.Time
	// written is the aggregator's write count (Aggregator.writes) at the
	// day's last successful write, 0 before one.
	written uint64
}

// newDayEntry holds d, loaded from Redis.
func newDayEntry(d *hllstore.Day) *dayEntry {
	e := &dayEntry{d: d, recs: make(map[hllstore.RecordID]*record, len(d.Records)), campaigns: map[string]struct{}{}}
	for id, r := range d.Records {
		e.recs[id] = &record{Record: r}
		if id.Campaign != "" {
			e.campaigns[id.Campaign] = struct{}{}
		}
	}
	return e
}

// record is a record of a held day with its marks: what the aggregator
// still owes for it besides its write to Redis. Marks are never stored.
type record struct {
	*hllstore.Record
	marks mark
}

// mark is a set of the flags below.
type mark uint8

const (
	unsnap mark = 1 << iota // changed since the last snapshot
	untop                   // changed since the last top-N update
)

// lateReason is the dead-letter reason of an event past the late horizon.
var lateReason = schemas.DeadLetterReason(schemas.DeadLetterLate, "event time older than the late horizon")

func (a *Aggregator) isLate(ev *pixelpb.Event) bool {
	return a.now().Sub(time.UnixMilli(ev.GetOrigin().GetReceivedAtMs())) > a.cfg.LateHorizon
}

// classOf separates people from machines (visitClass the visits').
func classOf(ev *pixelpb.Event) hllstore.Class {
	switch {
	case ev.GetMachineOpen():
		return hllstore.Machine
	case ev.GetBot():
		return hllstore.Bot
	case ev.GetUnverifiedReason() != "" && ev.GetSignaturePolicy() == "require":
		return hllstore.Unverified
	}
	return hllstore.Human
}

// visitClass is the class of a visit (KIND_SESSION): Bot when no hit of it
// was a person's (ev.Bot: bots and machine opens alike), else Human.
func visitClass(ev *pixelpb.Event) hllstore.Class {
	if ev.GetBot() {
		return hllstore.Bot
	}
	return hllstore.Human
}

// dayKey is the content id and UTC day an event counts in.
func dayKey(ev *pixelpb.Event) hllstore.DayKey {
	return hllstore.DayKey{ContentID: ev.GetContentId(), DayStart: hllstore.DayStart(ev.GetOrigin().GetReceivedAtMs())}
}

// campaignOf returns the campaign an event counts under in its day: its
// own, unless the day holds Config.MaxCampaigns others already (then none:
// the event counts for its content id only), so campaigns a page makes up
// cannot grow a day without bound.
func (a *Aggregator) campaignOf(e *dayEntry, ev *pixelpb.Event) string {
	c := ev.GetCampaignId()
	if c == "" {
		return ""
	}
	if _, ok := e.campaigns[c]; ok {
		return c
	}
	if len(e.campaigns) >= a.cfg.MaxCampaigns {
		a.m.campaignsOver.Inc()
		return ""
	}
	e.campaigns[c] = struct{}{}
	return c
}

// recordsOf returns the records of its day an event of class counts in:
// its content id's, and its campaign's (campaign, when not empty) on that
// content id, each for its hour and the day.
func recordsOf(dst []hllstore.RecordID, ev *pixelpb.Event, class hllstore.Class, campaign string, dayStart int64) []hllstore.RecordID {
	hour := int8((ev.GetOrigin().GetReceivedAtMs() - dayStart) / hllstore.HourMs)
	id := hllstore.RecordID{Kind: ev.GetKind(), Class: class, Hour: hllstore.DayRecord}
	dst = append(dst, id)
	id.Hour = hour
	dst = append(dst, id)
	if campaign != "" {
		id.Campaign = campaign
		dst = append(dst, id)
		id.Hour = hllstore.DayRecord
		dst = append(dst, id)
	}
	return dst
}

// apply adds the events to the in-memory days, loading days it does not
// hold yet from Redis first. An event counts in a day's records only if the
// day has not seen its source position, and in its breakdowns only if their
// positions have not; a visit (KIND_SESSION) by positions of its own
// (applyVisit).
func (a *Aggregator) apply(ctx context.Context, events []*pixelpb.Event) error {
	snapshots := a.snapshots()
	missing := a.missing[:0]
	for _, ev := range events {
		dk := dayKey(ev)
		if _, ok := a.days[dk]; !ok {
			a.days[dk] = nil // placeholder: listed once
			missing = append(missing, dk)
		}
	}
	a.missing = missing[:0]
	if len(missing) > 0 {
		var days []*hllstore.Day
		err := a.retryLoad(ctx, "count days", len(missing), func() (err error) {
			days, err = a.store.LoadDays(ctx, missing)
			return err
		})
		if err != nil {
			for _, dk := range missing {
				delete(a.days, dk)
			}
			return err
		}
		for i, dk := range missing {
			e := newDayEntry(days[i])
			for id, r := range e.recs {
				// A loaded record is raised in the top-N at the next detail
				// flush even if replayed events all skip: the raise may be
				// what a crash or reset lost.
				if r.Total > 0 && isTopRecord(id) {
					r.marks |= untop
				}
			}
			a.records += len(e.recs)
			a.days[dk] = e
		}
	}
	now := time.Now()
	var ids [4]hllstore.RecordID
	var values hllstore.Values
	for _, ev := range events {
		dk := dayKey(ev)
		e := a.days[dk]
		e.touched = now
		if ev.GetKind() == pixelpb.Kind_KIND_SESSION {
			a.applyVisit(e, dk, ev, ids[:0], snapshots)
			continue
		}
		d := e.d
		src := ev.GetSource()
		p, o := src.GetPartition(), src.GetOffset()
		vk := ev.GetVisitorKey()
		class := classOf(ev)
		human := class == hllstore.Human
		// A conversion whose order the day counted from another event (a
		// reloaded thank-you page, a resent pixel) counts in nothing; its
		// positions advance like any event's.
		dupOrder := ev.GetKind() == pixelpb.Kind_KIND_CONVERSION && ev.GetOrderId() != "" && !d.CountOrder(ev.GetOrderId(), p, o)
		if human && !d.BPos.Covers(p, o) {
			d.BPos[p] = o
			if !dupOrder {
				countBreakdowns(d.Breakdown(ev.GetKind()), &values, &a.prop, ev, a.cfg.MaxBreakdownValues)
			}
			e.bdirty = true
		}
		if d.Pos.Covers(p, o) {
			a.m.skipped.Inc()
			continue
		}
		d.Pos[p] = o
		e.dirty = true
		if dupOrder {
			a.m.dupOrder.Inc()
			continue
		}
		campaign := a.campaignOf(e, ev)
		if campaign != "" && len(ev.GetRecipientKey()) == hllstore.RecipientKeySize {
			a.applyRecipient(d, campaign, class, ev)
		}
		for _, id := range recordsOf(ids[:0], ev, class, campaign, dk.DayStart) {
			r := a.heldRecord(e, id)
			r.Add(vk)
			if ev.GetBot() || ev.GetMachineOpen() {
				for _, reason := range ev.GetBotReasons() {
					r.AddReason(reason)
				}
			} else if reason := ev.GetUnverifiedReason(); reason != "" {
				// Unverified, or human under a prefer policy: why it
				// did not verify.
				r.AddReason(reason)
			}
			if ev.GetKind() == pixelpb.Kind_KIND_CONVERSION && ev.GetOrderId() != "" {
				r.AddOrder(ev.GetOrderId(), ev.GetCurrency(), ev.GetValueMicros())
			}
			if snapshots {
				r.marks |= unsnap
			}
			if isTopRecord(id) {
				r.marks |= untop
			}
		}
		a.m.applied.Inc()
	}
	a.m.activeState.Set(float64(a.records))
	return nil
}

// applyRecipient adds an event that counts in d to the activity of its
// recipient in campaign (hllstore.Day.Recipient): an open, a click on its
// destination, a conversion or a page view, a person's or (opens and
// clicks) a machine's. It leaves out an event received before the
// recipient's erasure, and an unverified hit under a require signature
// policy: an unsigned click URL could name any recipient.
func (a *Aggregator) applyRecipient(d *hllstore.Day, campaign string, class hllstore.Class, ev *pixelpb.Event) {
	key := hllstore.RecipientKey(ev.GetRecipientKey())
	t := ev.GetOrigin().GetReceivedAtMs()
	if at, ok := a.erased[key]; ok && t <= at {
		a.m.recipientsErased.Inc()
		return
	}
	if class == hllstore.Unverified {
		a.m.recipientsUnattributed.Inc()
		return
	}
	machine := class != hllstore.Human
	var act *hllstore.Activity
	switch ev.GetKind() {
	case pixelpb.Kind_KIND_OPEN:
		act = d.Recipient(campaign, key)
		act.AddOpen(t, machine)
	case pixelpb.Kind_KIND_CLICK:
		act = d.Recipient(campaign, key)
		act.AddClick(ev.GetClickDestination(), machine)
	case pixelpb.Kind_KIND_CONVERSION:
		if machine {
			return
		}
		act = d.Recipient(campaign, key)
		act.AddConversion(ev.GetOrderId(), ev.GetValueMicros(), ev.GetCurrency())
	case pixelpb.Kind_KIND_VIEW:
		if machine {
			return
		}
		act = d.Recipient(campaign, key)
		act.Views++
	default:
		return
	}
	if uid := ev.GetRecipientId(); uid != "" {
		act.UID = uid
	}
	a.m.recipientsApplied.Inc()
}

// refreshErasures reads the erased recipients when they changed, and drops
// what the held days have of the newly erased unwritten.
func (a *Aggregator) refreshErasures(ctx context.Context) error {
	v, erased, err := a.store.Erasures(ctx, a.erasedVersion)
	if err != nil {
		return err
	}
	a.erasedVersion = v
	if erased == nil {
		return nil
	}
	for k := range erased {
		if _, ok := a.erased[k]; ok {
			continue
		}
		for _, e := range a.days {
			e.d.DropRecipient(k)
		}
	}
	a.erased = erased
	return nil
}

// heldRecord returns record id of e, creating it (empty) when e has none.
func (a *Aggregator) heldRecord(e *dayEntry, id hllstore.RecordID) *record {
	r := e.recs[id]
	if r == nil {
		r = &record{Record: e.d.Record(id)}
		e.recs[id] = r
		a.records++
	}
	return r
}

// applyVisit counts a visit, an event of kind KIND_SESSION, in e. It counts
// once per session position: the source position (partition, offset) of
// the hit or clock tick whose processing closed the visit, and the visit's
// index among those that record closed. Visits have positions of their own
// (hllstore.Day.SPos): a visit shares its offset with the hit that closed
// it, and both count. It counts in the records recordsOf gives (its landing
// content id's and its campaign's, its start's hour and day), of class Bot
// or Human (visitClass): the total counts visits, the sketch their visitors,
// and the sums their pages, durations and bounces. Visits touch neither
// the hits' positions nor breakdowns, orders or the top-N.
func (a *Aggregator) applyVisit(e *dayEntry, dk hllstore.DayKey, ev *pixelpb.Event, ids []hllstore.RecordID, snapshots bool) {
	d := e.d
	src := ev.GetSource()
	p, o, i := src.GetPartition(), src.GetOffset(), src.GetIndex()
	if d.SPos.Covers(p, o, i) {
		a.m.skipped.Inc()
		a.m.visitsSkipped.Inc()
		return
	}
	d.SPos[p] = hllstore.SessionPos{Offset: o, Index: i}
	e.dirty = true
	s := ev.GetSession()
	pages, duration := uint64(s.GetPages()), uint64(max(s.GetEndMs()-s.GetStartMs(), 0))
	for _, id := range recordsOf(ids, ev, visitClass(ev), a.campaignOf(e, ev), dk.DayStart) {
		r := a.heldRecord(e, id)
		r.Add(ev.GetVisitorKey())
		r.AddSum(hllstore.SumPages, pages)
		r.AddSum(hllstore.SumDurationMs, duration)
		if s.GetBounce() {
			r.AddSum(hllstore.SumBounces, 1)
		}
		if snapshots {
			r.marks |= unsnap
		}
	}
	a.m.applied.Inc()
	a.m.visitsApplied.Inc()
}

// isTopRecord reports whether a record is ranked in the top-N index: a
// content id's human day record of an event kind (visits are not ranked).
func isTopRecord(id hllstore.RecordID) bool {
	return id.Campaign == "" && id.Class == hllstore.Human && id.Hour == hllstore.DayRecord && id.Kind != pixelpb.Kind_KIND_SESSION
}

// retryLoad calls load until it succeeds, finds corrupt data, or ctx ends,
// with a growing pause: without the records no event of theirs can count.
func (a *Aggregator) retryLoad(ctx context.Context, what string, keys int, load func() error) error {
	backoff := 100 * time.Millisecond
	for {
		err := load()
		if err == nil || errors.Is(err, hllstore.ErrCorrupt) {
			return err
		}
		a.logger.Warn("load failed, retrying", "what", what, "keys", keys, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// breakdownValues sets an event's value in every breakdown dimension
// (hllstore.Dims): the page is the path of its page URL, the landing page
// the same for the first event of a session when it is a view, the
// destination a click's (redacted) destination URL.
func breakdownValues(v *hllstore.Values, ev *pixelpb.Event) {
	page := pagePath(ev.GetPageUrl())
	landing := ""
	if ev.GetSessionSeq() == 1 && ev.GetKind() == pixelpb.Kind_KIND_VIEW {
		landing = page
	}
	*v = hllstore.Values{ev.GetCountry(), ev.GetDeviceType(), ev.GetBrowser(), ev.GetOs(), ev.GetReferrerMedium(),
		ev.GetReferrerDomain(), ev.GetUtmSource(), ev.GetUtmMedium(), ev.GetUtmCampaign(), page, landing, ev.GetClickDestination(), ""}
}

// countBreakdowns counts ev in b: under its value in every dimension, and
// under each of its custom properties as "key=value". values and prop are
// scratch space (a property value costs an allocation only the first time
// the day's breakdown sees it).
func countBreakdowns(b *hllstore.Breakdown, values *hllstore.Values, prop *[]byte, ev *pixelpb.Event, maxValues int) {
	breakdownValues(values, ev)
	b.AddValues(values, ev.GetVisitorKey(), maxValues)
	for _, p := range ev.GetProps() {
		*prop = append(append(append((*prop)[:0], p.GetKey()...), '='), p.GetValue()...)
		b.AddBytes(hllstore.DimProp, *prop, ev.GetVisitorKey(), maxValues)
	}
}

// pagePath returns the path of an absolute URL ("/" when it has none),
// without its query and fragment; "" for no URL. It allocates nothing.
func pagePath(u string) string {
	if u == "" {
		return ""
	}
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
		j := strings.IndexAny(u, "/?#")
		if j < 0 || u[j] != '/' {
			return "/"
		}
		u = u[j:]
	}
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	if u == "" {
		return "/"
	}
	return u
}
