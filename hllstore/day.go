package hllstore

import (
	"strconv"

	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// DayKey names the records of one content id on one UTC day: every kind,
// traffic class, campaign, hour and the day itself, and the day's breakdowns.
type DayKey struct {
	ContentID string
	DayStart  int64
}

// DayRecord is the Hour of a RecordID that names the whole day.
const DayRecord int8 = -1

// RecordID names one record inside a Day.
type RecordID struct {
	// Campaign, when set, scopes the record to the hits of this campaign on
	// the day's content id.
	Campaign string
	Kind     pixelpb.Kind
	Class    Class
	// Hour is the UTC hour (0-23) of an hour record, DayRecord for the day.
	Hour int8
}

// Split returns the Day and the record inside it that k names.
func (k Key) Split() (DayKey, RecordID) {
	d := DayStart(k.Start)
	id := RecordID{Campaign: k.Campaign, Kind: k.Kind, Class: k.Class, Hour: DayRecord}
	if k.Gran == GranularityHour {
		id.Hour = int8((k.Start - d) / HourMs)
	}
	return DayKey{ContentID: k.ContentID, DayStart: d}, id
}

// Key returns the Key of record id of day dk.
func (dk DayKey) Key(id RecordID) Key {
	k := Key{ContentID: dk.ContentID, Campaign: id.Campaign, Kind: id.Kind, Class: id.Class, Gran: GranularityDay, Start: dk.DayStart}
	if id.Hour != DayRecord {
		k.Gran, k.Start = GranularityHour, dk.DayStart+int64(id.Hour)*HourMs
	}
	return k
}

// Day is the stored state of one DayKey. One version, one write token and
// one set of positions guard all of it: a write of a Day (part of one script
// call per content id group, see SaveDays) carries every record of the day
// that changed since the last write, and at detail flushes its breakdowns.
type Day struct {
	// Version counts the writes of the day. Readers compare it (a week
	// rollup names the versions of its days).
	Version uint64
	// guard is the guard value (fieldGuard) of the last write the holder
	// loaded or made; a write succeeds only over it (see saveDaysScript).
	guard, pendingGuard string
	// Pos holds the last source position applied to the records, BPos the
	// last applied to the breakdowns (written at detail flushes only).
	Pos, BPos Positions
	// SPos holds the last position of a session event (a visit) applied to
	// the records: visits are applied by their own positions, since one
	// shares its offset with the hit that closed it.
	SPos SessionPositions
	// Records holds the day's hour and day records.
	Records map[RecordID]*Record
	// Breakdowns holds the human breakdowns per kind.
	Breakdowns map[pixelpb.Kind]*Breakdown
	// campaigns lists campaigns whose index entry must still be written.
	campaigns map[string]bool
	// newRecords: bit h (0-23) when an hour record of hour h was added
	// since the last write, bit 24 when a day record was, so that list of
	// the day's records (fieldIDs, one per hour and one for the day) must
	// be written again.
	newRecords uint32
	// ordersStored: the day's order hash exists (its retention is set at
	// its first write).
	ordersStored bool
	// orders maps each order id of the day's conversions to the source
	// position of the event that counted it (CountOrder).
	orders map[string]orderPos
	// hours: bit h when hour h has records (as loaded; a write stores it
	// in the guard).
	hours uint32
	// recipients holds the recipient activity since the last write, per
	// campaign and recipient (written with the records, see recipient.go).
	recipients map[recipientRef]*Activity
	// rindexed lists the campaigns whose tenant index entry this holder
	// wrote.
	rindexed map[string]bool
}

// recipientRef names a recipient of a campaign.
type recipientRef struct {
	campaign string
	key      RecipientKey
}

// Recipient returns the pending activity of recipient key in campaign, to
// add to: it is written with the day's next write, and only then (a day
// dropped as stale drops it too, and the replay that follows adds it again).
func (d *Day) Recipient(campaign string, key RecipientKey) *Activity {
	ref := recipientRef{campaign, key}
	a := d.recipients[ref]
	if a == nil {
		if d.recipients == nil {
			d.recipients = map[recipientRef]*Activity{}
		}
		a = &Activity{}
		d.recipients[ref] = a
	}
	return a
}

// DropRecipient forgets the pending activity of recipient key (erased).
func (d *Day) DropRecipient(key RecipientKey) {
	for ref := range d.recipients {
		if ref.key == key {
			delete(d.recipients, ref)
		}
	}
}

// RecipientsPending reports whether recipient activity waits for a write.
func (d *Day) RecipientsPending() bool { return len(d.recipients) > 0 }

// NewDay returns an empty Day.
func NewDay() *Day {
	return &Day{Pos: Positions{}, BPos: Positions{}, SPos: SessionPositions{}, Records: map[RecordID]*Record{}, Breakdowns: map[pixelpb.Kind]*Breakdown{}}
}

// Record returns the record id, creating an empty one when absent (a new
// record is listed in the day's record lists, and a new campaign in its
// index, at the next write).
func (d *Day) Record(id RecordID) *Record {
	if r := d.Records[id]; r != nil {
		return r
	}
	nr := NewRecord()
	r := &nr
	d.Records[id] = r
	d.newRecords |= idsBit(id)
	if id.Campaign != "" {
		if d.campaigns == nil {
			d.campaigns = map[string]bool{}
		}
		d.campaigns[id.Campaign] = true
	}
	return r
}

// orderPos is the source position of the event that counted an order;
// p < 0 when unknown (an order stored without one).
type orderPos struct {
	p int32
	o int64
}

// CountOrder reports whether the conversion at source position (p, o)
// carrying order id counts in the day: when the day has not seen the order
// (it is remembered from now on, under this position), or saw it from this
// very event (a replay of it, e.g. into breakdowns that were not written
// with the records). Another event with the same order id is a duplicate:
// it counts in nothing, so conversions, orders and values each count an
// order once per content id and day, whatever its hour, class or campaign.
func (d *Day) CountOrder(id string, p int32, o int64) bool {
	if at, ok := d.orders[id]; ok {
		return at == orderPos{p, o}
	}
	if d.orders == nil {
		d.orders = map[string]orderPos{}
	}
	d.orders[id] = orderPos{p, o}
	return true
}

// orderPosition is the stored value of an order field: the position of the
// event that counted the order, "?" when unknown.
func (d *Day) orderPosition(id string) string {
	at, ok := d.orders[id]
	if !ok || at.p < 0 {
		return "?"
	}
	return strconv.FormatInt(int64(at.p), 10) + ":" + strconv.FormatInt(at.o, 10)
}

// Breakdown returns the breakdown of kind, creating an empty one.
func (d *Day) Breakdown(kind pixelpb.Kind) *Breakdown {
	b := d.Breakdowns[kind]
	if b == nil {
		nb := NewBreakdown()
		b = &nb
		d.Breakdowns[kind] = b
	}
	return b
}

// Dirty reports whether a record changed since the last write.
func (d *Day) Dirty() bool {
	for _, r := range d.Records {
		if r.dirty {
			return true
		}
	}
	return false
}

// DetailsDirty reports whether a breakdown changed since the last write.
func (d *Day) DetailsDirty() bool {
	for _, b := range d.Breakdowns {
		if b.changed {
			return true
		}
	}
	return false
}
