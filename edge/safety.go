package edge

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/bits"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pixelpipe/pixelpipe/edge/ratelimit"
	"github.com/pixelpipe/pixelpipe/edge/tcf"
	"github.com/pixelpipe/pixelpipe/internal/pii"
	"github.com/pixelpipe/pixelpipe/schemas"
)

// safety holds what the edge does to a hit before it is encoded, beyond
// parsing it: personal data redaction (T-S10), the per-client rate policy
// (T-S13) and consent decoding (T-S11). Its methods are safe for
// concurrent use and do not allocate on the common path: no '@', '%' or
// 9-digit run in a hit's text, and a client below the flag rate.
type safety struct {
	cfg  Config
	rate *ratelimit.Table // nil when Config.RateFlag and RateShed are 0

	redactedEmail, redactedPhone, pseudonymizedUID prometheus.Counter
	rateFlagged, rateShed                          prometheus.Counter
	consentInvalid                                 prometheus.Counter
}

// rateCells is the width of the rate table: 2 rows of 65,536 cells, 1 MiB
// whatever the number of client IPs.
const rateCells = 1 << 16

func newSafety(cfg Config, reg prometheus.Registerer) *safety {
	pii := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pixel_edge_pii_redactions_total",
		Help: "Personal data removed from hits before they were recorded, by kind: email and phone (a text field of a hit, such as the page URL, referrer, a property value or the user agent, rewritten), uid (an explicit visitor id that held an address or number, replaced by a keyed hash). pixel.hits.v1 never holds them.",
	}, []string{"kind"})
	rate := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pixel_edge_rate_limited_total",
		Help: "Hits from a client IP above the rate policy, by action: flagged (recorded with the edge's rate flag, counted downstream as bot traffic with reason \"rate\"; over edge.rate.flag hits/s) and shed (answered, not recorded; over edge.rate.shed hits/s).",
	}, []string{"action"})
	s := &safety{
		cfg:              cfg,
		redactedEmail:    pii.WithLabelValues("email"),
		redactedPhone:    pii.WithLabelValues("phone"),
		pseudonymizedUID: pii.WithLabelValues("uid"),
		rateFlagged:      rate.WithLabelValues("flagged"),
		rateShed:         rate.WithLabelValues("shed"),
		consentInvalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_edge_consent_refused_total",
			Help: "Hits with gdpr=1 whose gdpr_consent was missing, not a valid TCF v2 string, or without consent for purpose 1 (and edge.consent.vendorID): recorded without identifiers, no cookie set.",
		}),
	}
	if cfg.RateFlag > 0 || cfg.RateShed > 0 {
		s.rate = ratelimit.New(rateCells, time.Second)
	}
	if reg != nil {
		reg.MustRegister(pii, rate, s.consentInvalid)
	}
	return s
}

// rateVerdict is what the rate policy says of a hit.
type rateVerdict uint8

const (
	rateOK rateVerdict = iota
	rateFlag
	rateShed
)

// shedRate is recordParams' result for a hit shed by the rate policy.
const shedRate recordResult = 100

// rateOf counts a hit of client ip (4 or 16 bytes) at now and judges it.
// Only public addresses are judged: a loopback, private (RFC 1918, fc00::/7)
// or link-local client is a proxy, a sidecar or an internal load generator,
// which speaks for many clients. So an edge behind a load balancer on a
// private network does not flag all its traffic when edge.trustedProxies
// is not set (though it needs it for correct client IPs anyway).
func (s *safety) rateOf(ip []byte, now time.Time) rateVerdict {
	if s.rate == nil {
		return rateOK
	}
	if a, ok := netip.AddrFromSlice(ip); !ok || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsUnspecified() {
		return rateOK
	}
	n := int(s.rate.Observe(ip, now.UnixNano()))
	switch {
	case s.cfg.RateShed > 0 && n > s.cfg.RateShed:
		s.rateShed.Inc()
		return rateShed
	case s.cfg.RateFlag > 0 && n > s.cfg.RateFlag:
		s.rateFlagged.Inc()
		return rateFlag
	}
	return rateOK
}

// consent decodes the gdpr and gdpr_consent parameters: GDPR applies with
// gdpr=1; consent is given only by a valid TCF v2 string with consent for
// purpose 1 (store and/or access information on a device) and, when
// Config.ConsentVendorID is set, for that vendor. Anything else, an
// invalid string included, is no consent.
func (s *safety) consent(gdpr, consent []byte) (applies, given bool) {
	applies = string(gdpr) == "1"
	given = len(consent) > 0 && tcf.Allows(consent, s.cfg.ConsentVendorID)
	if applies && !given {
		s.consentInvalid.Inc()
	}
	return applies, given
}

// redact removes e-mail addresses and phone numbers from the hit's text
// fields, rewriting them into scratch (which it returns, extended), and
// replaces an explicit visitor id holding one by a keyed hash of it, so
// the visitor still counts as one.
func (s *safety) redact(f *schemas.HitFields, scratch []byte) []byte {
	for _, b := range []*[]byte{&f.PageURL, &f.Referrer, &f.UserAgent, &f.ClickDestination, &f.Purpose, &f.AcceptLanguage} {
		*b, scratch = s.redactText(nil, *b, scratch)
	}
	for i := range f.Props {
		p := &f.Props[i]
		p.Value, scratch = s.redactText(p.Key, p.Value, scratch)
	}
	if len(f.UserID) > 0 && pii.Find([]byte("uid"), f.UserID) != 0 {
		s.pseudonymizedUID.Inc()
		m := hmac.New(sha256.New, []byte(s.cfg.VisitorSecret))
		m.Write([]byte("pixelpipe/uid-pseudonym/v1\n"))
		m.Write(f.UserID)
		start := len(scratch)
		scratch = append(scratch, "h:"...)
		scratch = hex.AppendEncode(scratch, m.Sum(nil)[:16])
		f.UserID = scratch[start:]
	}
	return scratch
}

func (s *safety) redactText(key, b, scratch []byte) ([]byte, []byte) {
	if !mayHoldPII(b) {
		return b, scratch
	}
	k := pii.Find(key, b)
	if k == 0 {
		return b, scratch
	}
	if k&pii.Email != 0 {
		s.redactedEmail.Inc()
	}
	if k&pii.Phone != 0 {
		s.redactedPhone.Inc()
	}
	start := len(scratch)
	scratch = pii.AppendRedacted(scratch, key, b)
	return scratch[start:], scratch
}

// mayHoldPII is pii.Find's own pre-test (pii's mayHold) done eight bytes
// at a time: it reports whether b holds an '@', a '%' (which may decode to
// anything), or 9 digits with only phone separators (space - . ( ) +)
// between them. Text it passes holds nothing pii.Find would look further
// at, so nothing to redact. A browser's user agent, a plain URL and a
// referrer pass in tens of nanoseconds, where the byte-at-a-time scan took
// ≈0.3 µs a request for the hit's text fields together.
func mayHoldPII(b []byte) bool {
	run := 0 // digits since the last byte that is neither digit nor separator
	for len(b) > 0 {
		var w uint64
		if len(b) >= 8 {
			w = binary.LittleEndian.Uint64(b)
			b = b[8:]
		} else {
			var tail [8]byte // zeros: neither digits nor separators
			copy(tail[:], b)
			w = binary.LittleEndian.Uint64(tail[:])
			b = nil
		}
		if eqBytes(w, '@')|eqBytes(w, '%') != 0 {
			return true
		}
		d := inRange(w, '0', '9')
		if d == 0 && run == 0 {
			continue // no digit, and none before to continue
		}
		sep := inRange(w, '(', '.')&^(eqBytes(w, '*')|eqBytes(w, ',')) | eqBytes(w, ' ')
		other, digits := byteMask(hi&^(d|sep)), byteMask(d)
		if other == 0 {
			run += bits.OnesCount8(digits)
		} else {
			// Runs wholly inside the word are at most 6 bytes long: only
			// the one continued from before and the one started at its
			// end matter.
			first := bits.TrailingZeros8(other)
			if run+bits.OnesCount8(digits&(1<<first-1)) >= 9 {
				return true
			}
			run = bits.OnesCount8(digits >> (8 - bits.LeadingZeros8(other)))
		}
		if run >= 9 {
			return true
		}
	}
	return false
}

const (
	lo7 = 0x0101010101010101
	hi  = 0x8080808080808080
)

// eqBytes returns the high bit of each byte of w that equals c.
func eqBytes(w uint64, c byte) uint64 {
	x := w ^ (lo7 * uint64(c))
	// A byte of x is zero when neither its low 7 bits (adding 0x7f sets
	// the high bit of a non-zero) nor its high bit are set.
	return ^((x&^hi + ^uint64(hi)) | x) & hi
}

// inRange returns the high bit of each byte of w from lo to hi (both
// below 0x80): its low 7 bits are at least lo and below hi+1, its high bit
// clear. (w|hi) minus a constant below 0x80 per byte never borrows across
// bytes.
func inRange(w uint64, lo, hi8 byte) uint64 {
	x := w | hi
	return (x - lo7*uint64(lo)) &^ (x - lo7*uint64(hi8+1)) &^ w & hi
}

// byteMask gathers the high bit of each byte of x (only high bits set)
// into bit i for byte i.
func byteMask(x uint64) uint8 { return uint8(x * 0x0002040810204081 >> 56) }
