// Package session assigns server-side sessions to a visitor's hits and drops
// duplicate hits by event id. It is pure logic over one visitor's State: no
// I/O, no clock (event time decides), no goroutines. The processor holds the
// State of each visitor of its partitions in memory and snapshots it
// (processor/state) so that sessions and the duplicate window survive
// restarts and rebalances.
//
// Given the same State and the same hits in the same order, Apply gives the
// same results: that is what makes a replay after a crash write the same
// session ids and sequence numbers again.
package session

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"time"

	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Config sets the session and duplicate rules.
type Config struct {
	// Timeout ends a session after this much inactivity (event time).
	// Default 30 min.
	Timeout time.Duration
	// MaxDuration caps a session's length; the hit past it starts a new
	// session. Default 24 h.
	MaxDuration time.Duration
	// DedupeWindow is how long (event time, back from the visitor's newest
	// hit) an event id is remembered: a duplicate whose original is older
	// than that is not recognised. Edge retries repeat the original's
	// receive time, so they fall inside any window. Default 1 h.
	DedupeWindow time.Duration
	// MaxIDs bounds the event ids remembered per visitor (the oldest go
	// first). Default 512.
	MaxIDs int
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{Timeout: 30 * time.Minute, MaxDuration: 24 * time.Hour, DedupeWindow: time.Hour, MaxIDs: 512}
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if c.Timeout <= 0 || c.MaxDuration < c.Timeout {
		errs = append(errs, errors.New("session timeout must be positive and at most the session max duration"))
	}
	if c.DedupeWindow <= 0 || c.MaxIDs < 1 {
		errs = append(errs, errors.New("dedupe window must be positive and dedupe max ids at least 1"))
	}
	return errors.Join(errs...)
}

// ID16 is a 16-byte id.
type ID16 [16]byte

// Seen is an event id remembered for duplicate detection.
type Seen struct {
	ID   ID16
	AtMs int64
}

// Open is a visitor's session in progress.
type Open struct {
	ID       ID16
	Site     string
	Campaign string
	// Content is the content id of the session's first hit: its landing
	// content, under which its visit is counted.
	Content string
	// Human is set once a hit of the session was a person's (not labelled
	// a bot or a machine open); a session without one is a bot's visit.
	Human    bool
	StartMs  int64
	LastMs   int64
	Seq      uint32
	Pages    uint32
	Landing  string
	Exit     string
	Referrer string
}

// State is everything remembered about one visitor.
type State struct {
	Visitor uint64
	Seen    []Seen
	// NewestMs is the newest event time seen.
	NewestMs int64
	// Rate: hits within the event-time minute RateMinute.
	RateMinute int64
	RateCount  uint32
	Open       *Open
	// Alias is set on a cookieless visitor key whose first hit continued a
	// visit open at midnight under the previous day's key: the visitor is
	// counted under Alias, that key, for the rest of the day, so the visit
	// stays one session and one visitor. A key with an alias has no
	// session of its own.
	Alias uint64
	// HoldMs is an event time before which the state must be kept even when
	// idle: the end of the day of a midnight link, for both of its keys.
	HoldMs int64
}

// Hit is what sessions need to know of a hit.
type Hit struct {
	EventID  [16]byte
	AtMs     int64
	Site     string
	Campaign string
	Content  string
	Page     string
	Referrer string
	// IsPage counts the hit as a page view (kind view).
	IsPage bool
}

// Result is what Apply decided.
type Result struct {
	// Duplicate: the event id was seen within the window; nothing else is set
	// and the state is unchanged.
	Duplicate bool
	SessionID [16]byte
	Seq       uint32
	// RatePerMinute is the visitor's hits in this hit's event-time minute,
	// this one included.
	RatePerMinute uint32
	// Closed is the summary of a session this hit ended, or nil. Ownership
	// passes to the caller.
	Closed *pixelpb.Session
}

// Apply records h in s and returns its session.
func (c *Config) Apply(s *State, h *Hit) Result {
	for i := range s.Seen {
		if s.Seen[i].ID == ID16(h.EventID) {
			return Result{Duplicate: true}
		}
	}
	c.remember(s, h)

	var r Result
	minute := h.AtMs / 60_000
	if minute == s.RateMinute {
		s.RateCount++
	} else if minute > s.RateMinute {
		s.RateMinute, s.RateCount = minute, 1
	}
	if minute == s.RateMinute {
		r.RatePerMinute = s.RateCount
	} else {
		r.RatePerMinute = 1 // a late hit of an earlier minute
	}

	o := s.Open
	timeout, maxDur := c.Timeout.Milliseconds(), c.MaxDuration.Milliseconds()
	switch {
	case o != nil && h.AtMs < o.StartMs-timeout:
		// A late hit from before the open session: a session of its own,
		// closed at once; the open one is left alone.
		one := newOpen(s.Visitor, h)
		r.SessionID, r.Seq = [16]byte(one.ID), one.Seq
		r.Closed = Summary(s.Visitor, one)
		return r
	case o != nil && h.AtMs <= o.LastMs+timeout &&
		max(o.LastMs, h.AtMs)-min(o.StartMs, h.AtMs) <= maxDur &&
		h.Site == o.Site && (h.Campaign == "" || h.Campaign == o.Campaign):
		o.Seq++
		if h.AtMs < o.StartMs {
			o.StartMs, o.Landing, o.Content = h.AtMs, pageOr(h, o.Landing), h.Content
		}
		if h.AtMs >= o.LastMs {
			o.LastMs, o.Exit = h.AtMs, pageOr(h, o.Exit)
		}
		if h.IsPage {
			o.Pages++
		}
	default:
		if o != nil {
			r.Closed = Summary(s.Visitor, o)
		}
		o = newOpen(s.Visitor, h)
		s.Open = o
	}
	r.SessionID, r.Seq = [16]byte(o.ID), o.Seq
	return r
}

// MarkHuman records that the hit Apply returned r for was a person's (not
// labelled a bot or a machine open): its session is a human visit. The
// processor labels a hit after Apply (labels use r.RatePerMinute), so it
// calls this before it writes r.Closed.
func MarkHuman(s *State, r *Result) {
	switch {
	case r.Duplicate:
	case r.Closed != nil && [16]byte(r.Closed.GetSessionId()) == r.SessionID:
		// A late hit's session of its own, closed at once.
		r.Closed.Bot = false
	case s.Open != nil && s.Open.ID == ID16(r.SessionID):
		s.Open.Human = true
	}
}

// Expire closes the open session when it ended before watermarkMs, the
// newest event time of the visitor's partition minus the timeout, or when
// it reached its cap; it returns the summary or nil.
func (c *Config) Expire(s *State, watermarkMs int64) *pixelpb.Session {
	o := s.Open
	if o == nil || o.LastMs+c.Timeout.Milliseconds() >= watermarkMs {
		return nil
	}
	s.Open = nil
	return Summary(s.Visitor, o)
}

// remember adds h's id, forgetting ids older than the window and the oldest
// past MaxIDs.
func (c *Config) remember(s *State, h *Hit) {
	s.NewestMs = max(s.NewestMs, h.AtMs)
	cut := s.NewestMs - c.DedupeWindow.Milliseconds()
	keep := s.Seen[:0]
	for _, x := range s.Seen {
		if x.AtMs >= cut {
			keep = append(keep, x)
		}
	}
	if len(keep) >= c.MaxIDs {
		n := copy(keep, keep[len(keep)-c.MaxIDs+1:])
		keep = keep[:n]
	}
	s.Seen = append(keep, Seen{ID: ID16(h.EventID), AtMs: h.AtMs})
}

func newOpen(visitor uint64, h *Hit) *Open {
	o := &Open{
		ID: ID16(ID(visitor, h.EventID)), Site: h.Site, Campaign: h.Campaign, Content: h.Content,
		StartMs: h.AtMs, LastMs: h.AtMs, Seq: 1,
		Landing: h.Page, Exit: h.Page, Referrer: h.Referrer,
	}
	if h.IsPage {
		o.Pages = 1
	}
	return o
}

func pageOr(h *Hit, old string) string {
	if h.Page != "" {
		return h.Page
	}
	return old
}

// ID derives a session id from the visitor and the session's first event id,
// so the same hits always give the same id.
func ID(visitor uint64, first [16]byte) [16]byte {
	var b [24]byte
	binary.BigEndian.PutUint64(b[:8], visitor)
	copy(b[8:], first[:])
	sum := sha256.Sum256(b[:])
	var id [16]byte
	copy(id[:], sum[:16])
	return id
}

// Summary returns the pixel.sessions.v1 record of o.
func Summary(visitor uint64, o *Open) *pixelpb.Session {
	return &pixelpb.Session{
		SchemaVersion: schemas.SessionVersion,
		SessionId:     o.ID[:],
		VisitorKey:    visitor,
		SiteId:        o.Site,
		StartMs:       o.StartMs,
		EndMs:         o.LastMs,
		Events:        o.Seq,
		Pages:         o.Pages,
		LandingPage:   o.Landing,
		ExitPage:      o.Exit,
		Referrer:      o.Referrer,
		CampaignId:    o.Campaign,
		Bounce:        o.Pages <= 1,
		ContentId:     o.Content,
		Bot:           !o.Human,
	}
}

// Idle reports whether s may be forgotten at watermarkMs, the newest event
// time of its partition: it has no open session, and keep (at least the
// timeout and the duplicate window) has passed since its newest hit and
// since its hold. A visitor seen again after that starts afresh, which is
// what its session and duplicate rules would decide anyway.
func Idle(s *State, watermarkMs int64, keep time.Duration) bool {
	return s.Open == nil && watermarkMs > max(s.NewestMs, s.HoldMs)+keep.Milliseconds()
}
