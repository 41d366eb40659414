package edge

import (
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pixelpipe/pixelpipe/edge/ratelimit"
	"github.com/pixelpipe/pixelpipe/edge/tcf"
	"github.com/pixelpipe/pixelpipe/internal/pii"
	"github.com/pixelpipe/pixelpipe/internal/visitor"
	"github.com/pixelpipe/pixelpipe/schemas"
)

// safety holds what the edge does to a hit before it is encoded, beyond
// parsing it: personal data redaction (T-S10), the per-client rate policy
// (T-S13) and consent decoding (T-S11), cases of docs/test-catalogue.md. Its methods are safe for
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
	if len(f.UserID) > 0 && (s.cfg.Pseudonymise || pii.Find([]byte("uid"), f.UserID) != 0) {
		if !s.cfg.Pseudonymise {
			s.pseudonymizedUID.Inc()
		}
		f.UserID, scratch = s.pseudonym(visitor.UIDPseudonym, f.UserID, scratch)
	}
	if s.cfg.Pseudonymise {
		if len(f.CookieID) > 0 {
			f.CookieID, scratch = s.pseudonym(visitor.CookiePseudonym, f.CookieID, scratch)
		}
		start := len(scratch)
		scratch = pii.AppendTruncatedIP(scratch, f.ClientIP, 24, 48)
		f.ClientIP = scratch[start:]
	}
	return scratch
}

// pseudonym appends to scratch the pseudonym of id in domain
// (visitor.AppendPseudonym) and returns it.
func (s *safety) pseudonym(domain string, id, scratch []byte) ([]byte, []byte) {
	start := len(scratch)
	scratch = visitor.AppendPseudonym(scratch, []byte(s.cfg.VisitorSecret), domain, id)
	return scratch[start:], scratch
}

func (s *safety) redactText(key, b, scratch []byte) ([]byte, []byte) {
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
