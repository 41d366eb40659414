package hllstore

import (
	"errors"
	"strconv"
	"testing"
	"time"
)

func TestWeekStart(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Time{
		time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), // Monday
		time.Date(2026, 11, 29, 23, 59, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 12, 0, 0, 0, time.UTC),
	} {
		w := time.UnixMilli(WeekStart(d.UnixMilli())).UTC()
		if w.Weekday() != time.Monday || w.After(d) || d.Sub(w) >= 7*24*time.Hour || w != w.Truncate(24*time.Hour) {
			t.Errorf("WeekStart(%v) = %v", d, w)
		}
	}
}

func TestBucketStart(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 11, 28, 12, 34, 56, 0, time.UTC).UnixMilli()
	if got, want := DayStart(ts), time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC).UnixMilli(); got != want {
		t.Fatalf("DayStart = %d, want %d", got, want)
	}
	if got, want := BucketStart(GranularityHour, ts), time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC).UnixMilli(); got != want {
		t.Fatalf("hour start = %d, want %d", got, want)
	}
	if got := DayStart(-1); got != -DayMs {
		t.Fatalf("DayStart(-1) = %d", got)
	}
	if got, want := BucketStart(GranularityWeek, ts), time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC).UnixMilli(); got != want {
		t.Fatalf("week start = %d, want %d", got, want)
	}
	// The zero Granularity is a day, as Split and Key treat it.
	if got := BucketStart(0, ts); got != DayStart(ts) {
		t.Fatalf("zero granularity start = %d", got)
	}
}

func TestDayKeysAndFields(t *testing.T) {
	t.Parallel()
	s := New(nil, Config{Prefix: "x"})
	day := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC).UnixMilli()
	d, h, b := s.DayRedisKeys(DayKey{ContentID: "a-1", DayStart: day})
	g := GroupOf("a-1")
	if d != "x:c:{"+g+":20261128}:d" || h != "x:c:{"+g+":20261128}:h" || b != "x:c:{"+g+":20261128}:b" {
		t.Fatalf("keys %q %q %q", d, h, b)
	}
	if o := s.ordersKey(DayKey{ContentID: "a-1", DayStart: day}); o != "x:c:{"+g+":20261128}:a-1:o" {
		t.Fatalf("orders key %q", o)
	}
	// The group is FNV-1a of the content id modulo 256, in hex: readers in
	// other languages compute it the same way.
	if g != "06" || GroupOf("") != "c5" {
		t.Fatalf("groups %q %q", g, GroupOf(""))
	}
	seen := map[string]bool{}
	for i := range 4096 {
		seen[GroupOf(strconv.Itoa(i))] = true
	}
	if len(seen) != Groups {
		t.Fatalf("4096 content ids fell in %d groups, want %d", len(seen), Groups)
	}
	for _, tc := range []struct {
		k     Key
		field string
	}{
		{Key{ContentID: "a-1", Kind: 2, Gran: GranularityDay, Start: day}, "2|0|"},
		{Key{ContentID: "a-1", Kind: 1, Class: Bot, Gran: GranularityHour, Start: day + 13*HourMs}, "13|1|1|"},
		{Key{ContentID: "a-1", Campaign: "spring:x", Kind: 4, Class: Machine, Gran: GranularityDay, Start: day}, "4|2|spring:x"},
	} {
		dk, id := tc.k.Split()
		if got := rid(id); got != tc.field {
			t.Errorf("rid %q, want %q", got, tc.field)
		}
		if back := dk.Key(id); back != tc.k {
			t.Errorf("Split/Key round trip %+v -> %+v", tc.k, back)
		}
		if pid, ok := parseRID(rid(id)); !ok || pid != id {
			t.Errorf("parseRID(%q) = %+v %v", rid(id), pid, ok)
		}
	}
	for _, bad := range []string{"", "1|0", "24|1|0|", "1|9|", "x|0|", "1|2|3|4|5"} {
		if id, ok := parseRID(bad); ok {
			t.Errorf("parseRID(%q) = %+v, want an error", bad, id)
		}
	}
	// Orders of a day and of an hour record.
	d1 := NewDay()
	if err := d1.decodeOrders(map[string]string{"d|4|0||ord-1": "1", "h|07|4|0|spring|ord|2": "1"}); err != nil {
		t.Fatal(err)
	}
	day4 := d1.Records[RecordID{Kind: 4, Hour: DayRecord}]
	hour4 := d1.Records[RecordID{Kind: 4, Campaign: "spring", Hour: 7}]
	if day4 == nil || hour4 == nil || len(day4.Orders) != 1 || len(hour4.Orders) != 1 {
		t.Fatalf("orders decoded into %+v", d1.Records)
	}
	if _, ok := hour4.Orders["ord|2"]; !ok {
		t.Fatalf("hour orders %v", hour4.Orders)
	}
}

func TestEntries(t *testing.T) {
	t.Parallel()
	in := []string{"1|country|DE", "", "2|browser|a:b,c|d\nx", "4|os|12:3"}
	var b []byte
	for _, e := range in {
		b = appendEntry(b, e)
	}
	out, err := entries(string(b))
	if err != nil || len(out) != len(in) {
		t.Fatalf("entries(%q) = %q, %v", b, out, err)
	}
	for i := range in {
		if out[i] != in[i] {
			t.Fatalf("entry %d = %q, want %q", i, out[i], in[i])
		}
	}
	for _, bad := range []string{"3:ab", "x:abc", "-1:", "2"} {
		if _, err := entries(bad); err == nil {
			t.Errorf("entries(%q) accepted", bad)
		}
	}
}

func TestDecodeGuard(t *testing.T) {
	t.Parallel()
	d, ids, bids, err := decodeGuard([]any{"tok.1/7/0:12,3:4/o/8000", "12:1|country|DE", "2|0|,2|1|"})
	if err != nil || d.Version != 7 || d.guardToken() != "tok.1/" || d.Pos[0] != 12 || d.Pos[3] != 4 ||
		!d.ordersStored || d.hours != 1<<15 || len(ids) != 2 || len(bids) != 1 || bids[0] != "1|country|DE" {
		t.Fatalf("decodeGuard: %+v %v %q %v", d, ids, bids, err)
	}
	if guardVersion(d.guard) != "7" {
		t.Fatalf("guardVersion(%q) = %q", d.guard, guardVersion(d.guard))
	}
	// A day never written: nothing stored, nothing held.
	if d, ids, bids, err := decodeGuard([]any{nil, nil, nil}); err != nil || d.guard != "" || d.Version != 0 || ids != nil || bids != nil {
		t.Fatalf("empty guard: %+v %v %v %v", d, ids, bids, err)
	}
	for _, bad := range [][]any{
		{"tok/7/0:1", nil, nil},           // too few parts
		{"tok/x/0:1//0", nil, nil},        // version
		{"tok/7/0:x//0", nil, nil},        // positions
		{"tok/7/0:1//1000000", nil, nil},  // hours past 23
		{"tok/7/0:1//0", nil, "x|0|"},     // record id
		{"tok/7/0:1//0", "9:x", nil},      // breakdown list
		{"tok/7/0:1//0/0:1", nil, nil},    // session position without index
		{"tok/7/0:1//0/0:1.x", nil, nil},  // session index
		{"tok/7/0:1//0/0:1.-1", nil, nil}, // negative session index
		{"tok/7/0:1//0/0:1.0/", nil, nil}, // seven parts
	} {
		if _, _, _, err := decodeGuard(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decodeGuard(%q) = %v, want ErrCorrupt", bad, err)
		}
	}
}

// A guard with session positions: a sixth part, decoded into SPos; a guard
// of five parts (every day written before visits were counted, and every
// day without any) has none.
func TestDecodeGuardSessionPositions(t *testing.T) {
	t.Parallel()
	d, _, _, err := decodeGuard([]any{"tok.1/7/0:12/o/8000/0:12.2,5:3.0", nil, nil})
	if err != nil || d.Version != 7 || d.Pos[0] != 12 || len(d.Pos) != 1 || !d.ordersStored || d.hours != 1<<15 ||
		len(d.SPos) != 2 || d.SPos[0] != (SessionPos{12, 2}) || d.SPos[5] != (SessionPos{3, 0}) {
		t.Fatalf("decodeGuard: %+v %v", d, err)
	}
	if guardVersion(d.guard) != "7" || d.guardToken() != "tok.1/" {
		t.Fatalf("version %q token %q of %q", guardVersion(d.guard), d.guardToken(), d.guard)
	}
	d, _, _, err = decodeGuard([]any{"tok.1/7/0:12/o/8000", nil, nil})
	if err != nil || d.Version != 7 || d.Pos[0] != 12 || d.SPos == nil || len(d.SPos) != 0 {
		t.Fatalf("five-part guard: %+v %v", d, err)
	}
}

// appendGuard writes what decodeGuard reads; a day without session
// positions keeps the five-part guard byte for byte.
func TestGuardRoundTrip(t *testing.T) {
	t.Parallel()
	d := NewDay()
	d.Version = 4
	d.Pos[3], d.Pos[0] = 17, 9
	if g := string(appendGuard(nil, "t.1", d, true, 1<<2|1<<23)); g != "t.1/5/0:9,3:17/o/800004" {
		t.Fatalf("guard without session positions %q", g)
	}
	d.SPos[3] = SessionPos{Offset: 17, Index: 4}
	d.SPos[1] = SessionPos{Offset: 1 << 40, Index: 1<<32 - 1}
	g := string(appendGuard(nil, "t.1", d, false, 0))
	if g != "t.1/5/0:9,3:17//0/1:1099511627776.4294967295,3:17.4" {
		t.Fatalf("guard %q", g)
	}
	back, _, _, err := decodeGuard([]any{g, nil, nil})
	if err != nil || back.Version != 5 || len(back.Pos) != 2 || back.Pos[3] != 17 || back.Pos[0] != 9 ||
		len(back.SPos) != 2 || back.SPos[3] != d.SPos[3] || back.SPos[1] != d.SPos[1] || back.ordersStored {
		t.Fatalf("decoded %+v %v", back, err)
	}
}

// Session positions compare (offset, index): several visits closed by one
// record (one offset) count each once, and in order.
func TestSessionPositionsCovers(t *testing.T) {
	t.Parallel()
	ps := SessionPositions{0: {Offset: 10, Index: 2}}
	for _, c := range []struct {
		p     int32
		o     int64
		i     uint32
		cover bool
	}{
		{0, 9, 7, true}, {0, 10, 0, true}, {0, 10, 2, true},
		{0, 10, 3, false}, {0, 11, 0, false}, {1, 0, 0, false},
	} {
		if got := ps.Covers(c.p, c.o, c.i); got != c.cover {
			t.Errorf("Covers(%d, %d, %d) = %v, want %v", c.p, c.o, c.i, got, c.cover)
		}
	}
}

// A record's named sums: "name=n" lines, read back into Sums.
func TestDecodeSums(t *testing.T) {
	t.Parallel()
	c := NewCount()
	in := map[string]uint64{SumBounces: 2, SumDurationMs: 1 << 40, SumPages: 9}
	if err := c.decodeField(fieldSums, encodeCounts(in)); err != nil || len(c.Sums) != 3 ||
		c.Sums[SumBounces] != 2 || c.Sums[SumDurationMs] != 1<<40 || c.Sums[SumPages] != 9 || c.Reasons != nil {
		t.Fatalf("sums %v reasons %v %v", c.Sums, c.Reasons, err)
	}
	for _, bad := range []string{"pages", "pages=x", "pages=-1"} {
		if err := c.decodeField(fieldSums, bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decodeField(s, %q) = %v, want ErrCorrupt", bad, err)
		}
	}
}
