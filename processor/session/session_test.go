package session

import (
	"testing"
	"time"
)

const t0 = int64(1_764_331_200_000) // 2025-11-28T12:00:00Z

func hit(n byte, at time.Duration, edit ...func(*Hit)) *Hit {
	h := &Hit{AtMs: t0 + at.Milliseconds(), Site: "news", Page: "/p" + string('a'+n%26), IsPage: true}
	h.EventID[0] = n
	h.EventID[15] = 1
	for _, e := range edit {
		e(h)
	}
	return h
}

func TestApply(t *testing.T) {
	t.Parallel()
	type step struct {
		h         *Hit
		dup       bool
		session   int // index of the session (0-based, in order of start)
		seq       uint32
		closesOne bool
	}
	cmp := func(c string) func(*Hit) { return func(h *Hit) { h.Campaign = c } }
	tests := []struct {
		name  string
		steps []step
	}{
		{"inactivity splits", []step{
			{h: hit(1, 0), session: 0, seq: 1},
			{h: hit(2, 29*time.Minute), session: 0, seq: 2},
			{h: hit(3, 59*time.Minute), session: 0, seq: 3}, // exactly 30 min after the last
			{h: hit(4, 89*time.Minute+time.Millisecond), session: 1, seq: 1, closesOne: true},
		}},
		{"duplicate dropped, state unchanged", []step{
			{h: hit(1, 0), session: 0, seq: 1},
			{h: hit(1, 0), dup: true},
			{h: hit(2, time.Minute), session: 0, seq: 2},
		}},
		{"campaign change splits, no campaign does not", []step{
			{h: hit(1, 0, cmp("spring")), session: 0, seq: 1},
			{h: hit(2, time.Minute), session: 0, seq: 2},
			{h: hit(3, 2*time.Minute, cmp("summer")), session: 1, seq: 1, closesOne: true},
		}},
		{"24 h cap", []step{
			{h: hit(1, 0), session: 0, seq: 1},
			{h: hit(2, 20*time.Minute), session: 0, seq: 2},
			{h: hit(3, 24*time.Hour+time.Minute), session: 1, seq: 1, closesOne: true},
		}},
		{"late hit joins its session", []step{
			{h: hit(1, 10*time.Minute), session: 0, seq: 1},
			{h: hit(2, 0), session: 0, seq: 2},
		}},
		{"very late hit gets its own closed session", []step{
			{h: hit(1, 5*time.Hour), session: 0, seq: 1},
			{h: hit(2, 0), session: 1, seq: 1, closesOne: true},
			{h: hit(3, 5*time.Hour+time.Minute), session: 0, seq: 2},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := DefaultConfig()
			s := &State{Visitor: 42}
			var ids [][16]byte
			for i, st := range tt.steps {
				r := c.Apply(s, st.h)
				if r.Duplicate != st.dup {
					t.Fatalf("step %d: duplicate %v, want %v", i, r.Duplicate, st.dup)
				}
				if st.dup {
					continue
				}
				if st.session == len(ids) {
					ids = append(ids, r.SessionID)
				}
				if r.SessionID != ids[st.session] || r.Seq != st.seq {
					t.Fatalf("step %d: session %x seq %d, want session #%d seq %d", i, r.SessionID, r.Seq, st.session, st.seq)
				}
				if (r.Closed != nil) != st.closesOne {
					t.Fatalf("step %d: closed %v, want a closed session: %v", i, r.Closed, st.closesOne)
				}
			}
		})
	}
}

func TestSummaryAndExpire(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	s := &State{Visitor: 7}
	c.Apply(s, hit(1, 0, func(h *Hit) { h.Page, h.Referrer = "/landing", "https://www.google.com/" }))
	c.Apply(s, hit(2, time.Minute, func(h *Hit) { h.IsPage = false; h.Page = "" }))
	c.Apply(s, hit(3, 3*time.Minute, func(h *Hit) { h.Page = "/exit" }))
	if got := c.Expire(s, t0+33*time.Minute.Milliseconds()); got != nil {
		t.Fatalf("expired at exactly the timeout: %v", got)
	}
	sum := c.Expire(s, t0+33*time.Minute.Milliseconds()+1)
	if sum == nil || s.Open != nil {
		t.Fatal("not expired past the timeout")
	}
	if sum.GetEvents() != 3 || sum.GetPages() != 2 || sum.GetLandingPage() != "/landing" || sum.GetExitPage() != "/exit" ||
		sum.GetStartMs() != t0 || sum.GetEndMs() != t0+3*time.Minute.Milliseconds() || sum.GetBounce() ||
		sum.GetReferrer() != "https://www.google.com/" || sum.GetVisitorKey() != 7 || sum.GetSiteId() != "news" {
		t.Fatalf("summary %v", sum)
	}
	id := ID(7, hit(1, 0).EventID)
	if string(sum.GetSessionId()) != string(id[:]) {
		t.Fatal("session id is not derived from the first event")
	}
}

func TestDedupeWindowIsBounded(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	c.MaxIDs = 4
	s := &State{Visitor: 1}
	for i := byte(0); i < 10; i++ {
		c.Apply(s, hit(i, time.Duration(i)*time.Second))
	}
	if len(s.Seen) != 4 {
		t.Fatalf("%d ids remembered, want 4", len(s.Seen))
	}
	if !c.Apply(s, hit(9, 9*time.Second)).Duplicate || c.Apply(s, hit(1, time.Second)).Duplicate {
		t.Fatal("want the newest ids remembered and the oldest forgotten")
	}
	// Ids older than the window are forgotten.
	c = DefaultConfig()
	s = &State{Visitor: 1}
	c.Apply(s, hit(1, 0))
	c.Apply(s, hit(2, 2*time.Hour))
	if len(s.Seen) != 1 {
		t.Fatalf("%d ids remembered after the window, want 1", len(s.Seen))
	}
}

// FuzzSessionize: injecting duplicates never changes the session of any
// distinct hit.
func FuzzSessionize(f *testing.F) {
	f.Add([]byte{1, 5, 200, 3, 0, 90, 7}, []byte{0, 1, 0, 1})
	f.Fuzz(func(t *testing.T, gaps, dupMask []byte) {
		if len(gaps) > 200 {
			return
		}
		c := DefaultConfig()
		var hits []*Hit
		at := time.Duration(0)
		for i, g := range gaps {
			at += time.Duration(g) * time.Minute / 4
			h := hit(byte(i), at)
			h.EventID[1] = byte(i >> 8)
			hits = append(hits, h)
		}
		clean, dirty := &State{Visitor: 3}, &State{Visitor: 3}
		for i, h := range hits {
			want := c.Apply(clean, h)
			got := c.Apply(dirty, h)
			if i < len(dupMask) && dupMask[i]&1 == 1 {
				if !c.Apply(dirty, h).Duplicate {
					t.Fatalf("hit %d: duplicate not recognised", i)
				}
			}
			if got.SessionID != want.SessionID || got.Seq != want.Seq || (got.Closed == nil) != (want.Closed == nil) {
				t.Fatalf("hit %d: duplicates changed its session", i)
			}
		}
	})
}

// A session's summary names the content id of its first hit and is a bot's
// unless MarkHuman saw a person's hit in it, also for a late hit's session
// of its own.
func TestLandingContentAndHuman(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	content := func(id string) func(*Hit) { return func(h *Hit) { h.Content = id } }
	s := &State{Visitor: 7}
	c.Apply(s, hit(1, time.Minute, content("b")))
	c.Apply(s, hit(2, 0, content("a"))) // earlier: the landing moves to it
	r := c.Apply(s, hit(3, 2*time.Minute, content("c")))
	sum := Summary(s.Visitor, s.Open)
	if sum.GetContentId() != "a" || !sum.GetBot() {
		t.Fatalf("before MarkHuman: content %q bot %v, want a, true", sum.GetContentId(), sum.GetBot())
	}
	MarkHuman(s, &r)
	if sum := Summary(s.Visitor, s.Open); sum.GetBot() {
		t.Fatal("a session with a person's hit is a bot's")
	}

	// A late hit from before the open session: a session of its own,
	// closed at once; MarkHuman marks that one, not the open one.
	s = &State{Visitor: 8}
	c.Apply(s, hit(1, 2*time.Hour, content("x")))
	late := c.Apply(s, hit(2, 0, content("y")))
	if late.Closed == nil || late.Closed.GetContentId() != "y" || !late.Closed.GetBot() {
		t.Fatalf("late hit's session: %v", late.Closed)
	}
	MarkHuman(s, &late)
	if late.Closed.GetBot() || s.Open.Human {
		t.Fatalf("MarkHuman of a late hit: closed bot %v, open human %v; want false, false", late.Closed.GetBot(), s.Open.Human)
	}
	dup := c.Apply(s, hit(1, 2*time.Hour, content("x")))
	MarkHuman(s, &dup)
	if !dup.Duplicate || s.Open.Human {
		t.Fatal("MarkHuman of a duplicate changed the open session")
	}
}
