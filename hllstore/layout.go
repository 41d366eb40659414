package hllstore

import (
	"strconv"
	"strings"
	"time"

	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Layout. Content ids fall into Groups groups (GroupOf, computed from the
// content id alone). Per group and UTC day three hashes hold the day
// records, the hour records and the breakdowns of every content id of the
// group, and per content id and day a small hash its orders; all share a
// Redis Cluster hash tag (the braces), so one script call writes the
// changed days of a whole group, and all of it lives in one cluster slot:
//
//	<prefix>:c:{<group>:<yyyymmdd>}:d            day records and guards of the group's content ids
//	<prefix>:c:{<group>:<yyyymmdd>}:h            their hour records (kept HourRetention)
//	<prefix>:c:{<group>:<yyyymmdd>}:b            their breakdowns
//	<prefix>:c:{<group>:<yyyymmdd>}:<content>:o  a content id's orders
//
// In the group hashes every field starts with "<content>|". A record's
// fields are then "<f>|<rid>", rid = "<kind>|<class>|<campaign>" (the
// campaign empty for the content id's own records), prefixed "<hh>|" for an
// hour record; f is c (the total in decimal, ":", then the serialized
// sketch), r (reasons, "code=n" lines), s (named sums, "name=n" lines:
// bounces, duration_ms and pages of visit records, written when a record
// has any), v (value per currency, "cur=micros" lines) and oc (distinct
// orders). A day's fields in the day hash: g, its guard,
// "<token>/<version>/<positions>/<o>/<hours>[/<session positions>]" (the
// token of its last write, the number of its writes, the source positions
// of its records as "<partition>:<offset>" pairs joined by ",", "o" when
// its order hash exists, in hex a mask of the hours that have records, and,
// only once the day has counted visits, the positions of its session
// events as "<partition>:<offset>.<index>" pairs joined by ","; a guard of
// five parts has none); ids, the rids of its day records joined by "," (ids are
// [A-Za-z0-9._:-], so never hold "|", "/" or ","), and ids|<hh> those of
// hour hh's records (a list per hour, so that a new record rewrites a list
// of one hour, not of the whole day); bids, its breakdown values
// "<kind>|<dim>|<value>", each written "<length>:<value>" (values are free
// text). A loader reads g, ids and bids, then the lists of the hours in g's
// mask, then exactly the fields they name. Breakdown fields are "c|<kind>|<dim>|<value>" (total and sketch,
// like a record's c) and bpos, the source positions applied to the
// breakdowns, written with them. An order field is "d|<rid>|<order id>"
// (day records) or "h|<rid>|<order id>" (hour records); its value is the
// source position "<partition>:<offset>" of the event that counted the
// order (Day.CountOrder: a replay of that event counts, any other event with
// the order id does not).
func (s *Store) groupBase(dk DayKey) string {
	return s.prefix + ":c:" + groupTag(GroupOf(dk.ContentID), dk.DayStart) + ":"
}

// groupTag is the Redis Cluster hash tag of a group's keys of the UTC day
// at dayStart: "{<group>:<yyyymmdd>}".
func groupTag(group string, dayStart int64) string {
	return "{" + group + ":" + time.UnixMilli(dayStart).UTC().Format("20060102") + "}"
}

// dayBase names dk in messages.
func (s *Store) dayBase(dk DayKey) string { return s.groupBase(dk) + dk.ContentID }

// Groups is the number of content id groups of the day layout: content ids
// of one group share their records' hashes per day, and their days are
// written together. 256 groups keep a flush at a few hundred script calls
// however many content ids changed, and spread a day over 256 cluster slots.
const Groups = 256

// GroupOf returns the group of a content id: FNV-1a (32 bits) of its bytes
// modulo Groups, two hex digits.
func GroupOf(contentID string) string { return groupName(groupIndex(contentID)) }

// groupName returns group g (0 to Groups-1) as two hex digits.
func groupName(g uint32) string {
	const hex = "0123456789abcdef"
	return string([]byte{hex[g>>4&15], hex[g&15]})
}

func groupIndex(contentID string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(contentID); i++ {
		h ^= uint32(contentID[i])
		h *= 16777619
	}
	return h % Groups
}

// DayRedisKeys returns the hashes holding dk: the group's day record, hour
// record and breakdown hashes, shared with the other content ids of the
// group; dk's fields start with DayField(dk).
func (s *Store) DayRedisKeys(dk DayKey) (day, hour, breakdown string) {
	b := s.groupBase(dk)
	return b + "d", b + "h", b + "b"
}

// ordersKey returns the hash of dk's orders.
func (s *Store) ordersKey(dk DayKey) string { return s.groupBase(dk) + dk.ContentID + ":o" }

// DayField returns the prefix of dk's fields in the group hashes.
func DayField(dk DayKey) string { return dk.ContentID + "|" }

// rid returns the record part of a field name.
func rid(id RecordID) string {
	s := strconv.Itoa(int(id.Kind)) + "|" + strconv.Itoa(int(id.Class)) + "|" + id.Campaign
	if id.Hour != DayRecord {
		s = twoDigits(int(id.Hour)) + "|" + s
	}
	return s
}

func twoDigits(h int) string { return string([]byte{byte('0' + h/10), byte('0' + h%10)}) }

// parseRID parses a rid: "<kind>|<class>|<campaign>", with "<hh>|" first
// for an hour record.
func parseRID(s string) (RecordID, bool) {
	id := RecordID{Hour: DayRecord}
	parts := strings.Split(s, "|")
	if len(parts) == 4 {
		h, err := strconv.Atoi(parts[0])
		if err != nil || len(parts[0]) != 2 || h < 0 || h > 23 {
			return id, false
		}
		id.Hour = int8(h)
		parts = parts[1:]
	}
	if len(parts) != 3 {
		return id, false
	}
	k, err1 := strconv.Atoi(parts[0])
	c, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || c < 0 || c > int(Unverified) {
		return id, false
	}
	id.Kind, id.Class, id.Campaign = pixelpb.Kind(k), Class(c), parts[2]
	return id, true
}

// guardFields are the fields of a day that name the others: its guard, its
// breakdown values, and the lists of its day records and of each hour's
// records (one list per hour, so a new record rewrites the list of its hour,
// not of the whole day). LoadDays reads the first three, then the lists of
// the hours the guard says have records.
var guardFields = func() (f [27]string) {
	f[0], f[1], f[2] = fieldGuard, fieldBreakdownIDs, fieldIDs
	for h := range 24 {
		f[3+h] = fieldIDs + "|" + twoDigits(h)
	}
	return f
}()

// idsBit is the bit of Day.newRecords of id's list.
func idsBit(id RecordID) uint32 {
	if id.Hour == DayRecord {
		return 1 << 24
	}
	return 1 << uint(id.Hour)
}

// idsField is the field (without the day's prefix) of id's list.
func idsField(id RecordID) string {
	if id.Hour == DayRecord {
		return guardFields[2]
	}
	return guardFields[3+int(id.Hour)]
}
