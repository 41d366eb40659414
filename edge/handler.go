package edge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/pixelpipe/pixelpipe/edge/spool"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// transparentGIF is the smallest transparent 1x1 GIF: 43 bytes.
var transparentGIF = []byte{
	'G', 'I', 'F', '8', '9', 'a', 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00,
	0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00,
	0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
	0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
}

// Limits on single parameters. Longer values make the hit invalid (ids) or
// are cut (free text), so one request can never grow a record without bound.
const (
	maxIDLen   = schemas.MaxIDLen
	maxTextLen = 2048
	// maxParams bounds the query parameters of one hit; more make it
	// invalid (too_many_params). The request line bound (MaxHeaderBytes)
	// bounds the parsing work before that.
	maxParams = 100
)

// Routes and the RawHit.route value of each.
const (
	routePixel      = "pixel"
	routeBeacon     = "beacon"
	routeClick      = "click"
	routeConversion = "conversion"
)

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	if ambiguousFraming(&ctx.Request.Header) {
		// A proxy in front may have framed this request differently, so
		// what follows on the connection cannot be trusted: 400 and close.
		s.m.malformed.Inc()
		ctx.Error("malformed request: ambiguous framing\n", fasthttp.StatusBadRequest)
		noCache(&ctx.Response.Header)
		ctx.SetConnectionClose()
		return
	}
	switch string(ctx.Path()) {
	case "/p.gif":
		s.pixel(ctx)
	case "/b":
		s.beacon(ctx)
	case "/e":
		s.batch(ctx)
	case "/c":
		s.click(ctx)
	case "/optout":
		s.optOut(ctx)
	case "/":
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("pixelpipe edge: embed <img src=\"/p.gif?cid=CONTENT_ID\">\n")
	default:
		ctx.Error("not found: the pixel is at /p.gif?cid=CONTENT_ID", fasthttp.StatusNotFound)
	}
}

// ambiguousFraming reports a request whose length a proxy in front of the
// edge could read differently than fasthttp does (request smuggling),
// which fasthttp itself tolerates: a header line ended
// by a bare LF, a folded header line (obs-fold), both Transfer-Encoding and
// Content-Length, and a GET or HEAD with a body (fasthttp does not read it,
// so a proxy that forwarded it would have smuggled it as the next request).
// It scans the raw header block once and does not allocate.
func ambiguousFraming(h *fasthttp.RequestHeader) bool {
	raw := h.RawHeaders()
	var cl, te bool
	for line := 0; line < len(raw); {
		i := bytes.IndexByte(raw[line:], '\n')
		if i < 0 {
			break
		}
		end := line + i
		if end == 0 || raw[end-1] != '\r' {
			return true // bare LF
		}
		if end+1 < len(raw) && (raw[end+1] == ' ' || raw[end+1] == '\t') {
			return true // obs-fold
		}
		l := raw[line:end]
		cl = cl || hasPrefixFold(l, "content-length:")
		te = te || hasPrefixFold(l, "transfer-encoding:")
		line = end + 1
	}
	if cl && te {
		return true
	}
	return (h.IsGet() || h.IsHead()) && (te || h.ContentLength() > 0)
}

func hasPrefixFold(b []byte, prefix string) bool {
	if len(b) < len(prefix) {
		return false
	}
	for i := range len(prefix) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// noCache sets the cache headers. SetCanonical skips fasthttp's
// normalizing of each name (the names are canonical already), which was
// ≈0.3 µs a request.
func noCache(h *fasthttp.ResponseHeader) {
	h.SetCanonical(headerCacheControl, valueNoCache)
	h.SetCanonical(headerPragma, valuePragma)
	h.SetCanonical(headerExpires, valueExpires)
}

// pixel answers the GIF first, then records the hit; nothing in the request
// can make it answer anything else.
func (s *Server) pixel(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Error("method not allowed: use GET or HEAD", fasthttp.StatusMethodNotAllowed)
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		return
	}
	h := &ctx.Response.Header
	h.SetContentTypeBytes(contentTypeGIF)
	noCache(h)
	ctx.SetBody(transparentGIF)
	s.record(ctx, routePixel, nil, "", false)
}

// beacon is the pixel without a body: 204, for navigator.sendBeacon and
// fetch(..., {keepalive: true}) with the parameters in the query string.
func (s *Server) beacon(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() && !ctx.IsPost() {
		ctx.Error("method not allowed: use GET, HEAD or POST", fasthttp.StatusMethodNotAllowed)
		ctx.Response.Header.Set("Allow", "GET, HEAD, POST")
		return
	}
	noCache(&ctx.Response.Header)
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	s.record(ctx, routeBeacon, nil, "", false)
}

// click redirects to the u parameter when a signature or the site's
// allow-list proves it, and records a click; anything else gets 400 with no
// Location and is recorded as an invalid click.
func (s *Server) click(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Error("method not allowed: use GET or HEAD", fasthttp.StatusMethodNotAllowed)
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		return
	}
	noCache(&ctx.Response.Header)
	args := ctx.QueryArgs()
	dest := args.Peek("u")
	loc, host, err := redirectLocation(dest)
	signed := err == nil && verifyClick(s.cfg.ClickKeys, args.Peek("kid"), args.Peek("cid"), dest, args.Peek("exp"), args.Peek("sig"), s.now())
	if err == nil && !signed && !hostAllowed(s.cfg.ClickAllowHosts, args.Peek("site"), host) {
		err = errNotAllowed
	}
	if err != nil {
		s.m.invalidClick.Inc()
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		ctx.SetBodyString("bad click: " + err.Error() + "\n")
		s.record(ctx, routeClick, nil, schemas.InvalidBadClick, false)
		return
	}
	ctx.Response.Header.Set("Location", loc)
	ctx.SetStatusCode(fasthttp.StatusFound)
	// A signed click is a verified hit, as a signed pixel is; one let
	// through by the allow-list is not.
	s.record(ctx, routeClick, []byte(loc), "", signed)
}

// optOut sets the opt-out cookie; hits from a browser that has it are
// answered and not recorded.
func (s *Server) optOut(ctx *fasthttp.RequestCtx) {
	var c fasthttp.Cookie
	c.SetKey(s.cfg.OptOutCookie)
	c.SetValue("1")
	c.SetPath("/")
	c.SetMaxAge(5 * 365 * 24 * 3600)
	c.SetSecure(true)
	c.SetHTTPOnly(true)
	c.SetSameSite(fasthttp.CookieSameSiteNoneMode)
	if s.cfg.CookieDomain != "" {
		c.SetDomain(s.cfg.CookieDomain)
	}
	ctx.Response.Header.SetCookie(&c)
	noCache(&ctx.Response.Header)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString("You are opted out: this browser's visits are no longer recorded.\n")
}

var (
	contentTypeGIF     = []byte("image/gif")
	headerCacheControl = []byte("Cache-Control")
	valueNoCache       = []byte("no-cache, no-store, must-revalidate")
	headerPragma       = []byte("Pragma")
	valuePragma        = []byte("no-cache")
	headerExpires      = []byte("Expires")
	valueExpires       = []byte("0")
)

// hitParams are a hit's parameters: from the query string of a pixel,
// beacon or click, or from one event of a batch. The slices are borrowed.
type hitParams struct {
	cid, site, cmp, ad, cr, pl, uid, url, ref, kind []byte
	oid, val, cur, gdpr, gdprConsent                []byte
	// A signed pixel's key id, expiry and signature (query strings only).
	kid, exp, sig []byte
	// n is the number of parameters given, for the maxParams bound.
	n int
	// verified: a signed pixel whose signature checked; sigErr why a
	// signed one did not.
	verified bool
	sigErr   schemas.SignatureError
}

// recordResult says what record did with a hit.
type recordResult int

const (
	recordedValid recordResult = iota
	recordedInvalid
	notRecorded // opted out, or dropped (spool full or failing, shutting down)
)

// record takes the hit's parameters from the query string; signedClick
// says a click's signature verified (a pixel's is checked here).
func (s *Server) record(ctx *fasthttp.RequestCtx, route string, clickDest []byte, invalid schemas.InvalidReason, signedClick bool) {
	if len(ctx.Request.Header.Cookie(s.cfg.OptOutCookie)) > 0 {
		s.m.optedOut.Inc()
		return
	}
	rec := s.pool.Get().(*record)
	defer s.pool.Put(rec)
	rec.query, rec.props = rec.params.fromQuery(ctx.URI().QueryString(), rec.query[:0], rec.props[:0])
	if p := &rec.params; route == routeClick {
		p.verified = signedClick
	} else if len(p.sig) > 0 {
		p.sigErr = verifyPixel(s.cfg.ClickKeys, p.kid, p.exp, ctx.URI().QueryString(), s.now())
		p.verified = p.sigErr == ""
	}
	rec.issued = rec.issued[:0]
	s.recordParams(ctx, rec, route, clickDest, invalid)
	rec.params = hitParams{}
	clear(rec.props)
}

// recordParams encodes the hit of rec.params and appends it to the spool
// before the handler returns, so the hit is safe (as the spool's sync mode
// says) before the answer is written. The request supplies what parameters
// do not: headers, cookies, client IP.
func (s *Server) recordParams(ctx *fasthttp.RequestCtx, rec *record, route string, clickDest []byte, invalid schemas.InvalidReason) (invalidReason schemas.InvalidReason, res recordResult) {
	if !s.pub.enter() {
		s.m.dropped.Inc()
		return "", notRecorded
	}
	defer s.pub.leave()

	now := s.requestTime(ctx)
	p := &rec.params
	f := &rec.fields
	f.ReceivedAtMs = now.UnixMilli()
	f.NodeID = s.cfg.NodeID
	f.BootMs = s.bootMs

	f.ContentID = p.cid
	f.SiteID = p.site
	f.CampaignID = p.cmp
	f.AdID = p.ad
	f.CreativeID = p.cr
	f.PlacementID = p.pl
	f.UserID = p.uid
	f.Route = route
	f.ClickDestination = clickDest
	hdr := &rec.hdr
	hdr.read(&ctx.Request.Header)
	// The page and where its visitor came from: url and ref, as the page
	// snippet sends them (location.href, document.referrer). The Referer
	// header of an image, beacon or script request names the page that
	// made it, so it stands in for url, never for ref; a click's names the
	// page that held the link, where the visitor comes from, so it stands
	// in for ref.
	page, ref := p.url, p.ref
	switch {
	case route == routeClick:
		if len(ref) == 0 {
			ref = hdr.referer
		}
	case len(page) == 0:
		page = hdr.referer
	}
	// Free text goes into protobuf string fields, which must be UTF-8:
	// invalid bytes become U+FFFD (in the record's scratch space).
	rec.scratch = rec.scratch[:0]
	f.PageURL, rec.scratch = text(page, rec.scratch)
	f.Referrer, rec.scratch = text(ref, rec.scratch)
	f.UserAgent, rec.scratch = text(hdr.userAgent, rec.scratch)
	f.CookieID = ctx.Request.Header.Cookie(s.cfg.VisitorCookie)
	peer := peerAddr(ctx.RemoteIP())
	if len(s.cfg.TrustedProxies) > 0 {
		peer = clientAddr(peer, ctx.Request.Header.PeekAll("X-Forwarded-For"), s.cfg.TrustedProxies)
	}
	rec.ip = appendIP(rec.ip[:0], peer)
	f.ClientIP = rec.ip
	rate := s.safe.rateOf(rec.ip, now)
	if rate == rateShed {
		rec.fields = schemas.HitFields{}
		rec.hdr = reqHeaders{}
		return "", shedRate
	}

	// Privacy signals. Without consent where GDPR applies, or with GPC/DNT
	// when the operator honours them, no identifier is recorded: the hit
	// counts, under the cookieless key the processor derives.
	f.GPC = string(hdr.gpc) == "1"
	f.DNT = string(hdr.dnt) == "1"
	f.GDPRApplies, f.ConsentGiven = s.safe.consent(p.gdpr, p.gdprConsent)
	if (f.GDPRApplies && !f.ConsentGiven) || (s.cfg.HonourGPC && f.GPC) || (s.cfg.HonourDNT && f.DNT) {
		f.UserID, f.CookieID = nil, nil
	} else if s.cfg.IssueVisitorCookie && len(f.CookieID) == 0 {
		// Consent allows, and the browser has no visitor cookie: issue one
		// (once per request, whatever the number of events), and count
		// this hit under it already.
		if len(rec.issued) == 0 {
			rec.issued = newVisitorID(rec.issued)
			s.setVisitorCookie(ctx, rec.issued)
		}
		f.CookieID = rec.issued
	}
	f.Verified, f.SignatureError = p.verified, p.sigErr
	f.Purpose = hdr.secPurpose
	if len(f.Purpose) == 0 {
		f.Purpose = hdr.purpose
	}
	f.Purpose, rec.scratch = text(cut(f.Purpose, maxPurposeLen), rec.scratch)
	f.AcceptLanguage, rec.scratch = text(cut(hdr.acceptLanguage, maxLanguageLen), rec.scratch)
	f.PresentHeaders = hdr.present
	if rate == rateFlag {
		f.PresentHeaders |= schemas.EdgeFlagRate
	}
	var propsOK bool
	f.Props, rec.scratch, propsOK = checkProps(rec.props, rec.scratch)
	rec.scratch = s.safe.redact(f, rec.scratch)

	var ok bool
	f.Kind, ok = parseKind(p.kind)
	if route == routeClick {
		f.Kind, ok = pixelpb.Kind_KIND_CLICK, true
	}
	if f.Kind == pixelpb.Kind_KIND_CONVERSION {
		if route == routePixel {
			f.Route = routeConversion
		}
		f.OrderID = p.oid
		f.Currency = p.cur
		var reason schemas.InvalidReason
		f.ValueMicros, reason = conversion(p.oid, p.val, p.cur)
		if reason != "" {
			f.InvalidReason = reason
			f.OrderID, f.Currency, f.ValueMicros = nil, nil, 0
		}
	}
	// Ids end up in keys and URLs: anything outside their byte class is
	// dropped, never passed on, and the hit is marked invalid.
	if !validID(f.SiteID) || !validID(f.CampaignID) || !validID(f.CookieID) || !validID(f.AdID) || !validID(f.CreativeID) || !validID(f.PlacementID) ||
		len(f.UserID) > maxIDLen || !utf8.Valid(f.UserID) {
		f.InvalidReason = schemas.InvalidBadID
		f.SiteID, f.CampaignID, f.CookieID, f.UserID = nil, nil, nil, nil
		f.AdID, f.CreativeID, f.PlacementID = nil, nil, nil
	}
	if !ok {
		f.InvalidReason = schemas.InvalidBadKind
	}
	if !propsOK {
		f.InvalidReason = schemas.InvalidBadProps
	}
	if p.n > maxParams {
		f.InvalidReason = schemas.InvalidTooManyParam
	}
	if invalid != "" {
		f.InvalidReason = invalid
	}
	switch {
	case len(f.ContentID) == 0:
		f.InvalidReason = schemas.InvalidMissingCID
	case !validID(f.ContentID):
		f.InvalidReason = schemas.InvalidBadCID
		f.ContentID = nil
	}

	key := s.keyer.PartitionKey(f.ReceivedAtMs, f.SiteID, f.UserID, f.CookieID, f.ClientIP, f.UserAgent)
	rec.buf = schemas.AppendVisitorPartitionKey(rec.buf[:0], key)
	// The hit's number in its lane is taken last, just before the spool
	// append: a hit shed above never takes one, so the lane has no gap
	// for it (a hit the spool refuses below leaves one: it is lost).
	// The event id is the boot's random prefix and the lane and number,
	// unique within the boot; a hit without a lane takes the node-wide
	// number (below 2^48, so it never meets a lane's).
	f.Lane, f.Seq = s.lanes.next(rec.buf[:keyLen])
	idLow := uint64(f.Lane)<<48 | f.Seq
	if f.Lane == 0 {
		f.Seq = s.seq.Add(1)
		idLow = f.Seq
	}
	binary.BigEndian.PutUint64(f.EventID[:8], s.idPrefix)
	binary.BigEndian.PutUint64(f.EventID[8:], idLow)
	rec.buf = binary.BigEndian.AppendUint64(rec.buf, laneHeader(f.ReceivedAtMs, f.Lane))
	rec.buf = schemas.AppendRawHit(rec.buf, f)
	invalidReason = f.InvalidReason
	rec.fields = schemas.HitFields{} // drop references to the request's memory
	rec.hdr = reqHeaders{}

	if err := s.spool.Append(rec.buf); err != nil {
		s.m.dropped.Inc()
		if !errors.Is(err, spool.ErrFull) {
			s.m.spoolErrors.Inc()
			s.logSpoolError(err)
		}
		return invalidReason, notRecorded
	}
	if invalidReason != "" {
		s.m.invalid.Inc()
		return invalidReason, recordedInvalid
	}
	s.m.accepted.Inc()
	return "", recordedValid
}

func (s *Server) now() time.Time {
	if s.clock != nil {
		return s.clock()
	}
	return time.Now()
}

// requestTime is the time of the request being answered: fasthttp's (it
// reads the clock once per request, on first use: LazyRequestTime), or the
// test clock.
func (s *Server) requestTime(ctx *fasthttp.RequestCtx) time.Time {
	if s.clock != nil {
		return s.clock()
	}
	return ctx.Time()
}

// parseKind maps the k parameter to a Kind; empty means a view.
func parseKind(b []byte) (pixelpb.Kind, bool) {
	switch string(b) {
	case "", "view":
		return pixelpb.Kind_KIND_VIEW, true
	case "impression":
		return pixelpb.Kind_KIND_IMPRESSION, true
	case "click":
		return pixelpb.Kind_KIND_CLICK, true
	case "conversion":
		return pixelpb.Kind_KIND_CONVERSION, true
	case "open":
		return pixelpb.Kind_KIND_OPEN, true
	case "custom":
		return pixelpb.Kind_KIND_CUSTOM, true
	}
	return pixelpb.Kind_KIND_VIEW, false
}

// validID accepts empty ids and ids of at most schemas.MaxIDLen bytes of
// the id byte class (schemas.ValidID).
func validID(b []byte) bool { return schemas.ValidID(b) }

func cut(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// text cuts b to maxTextLen bytes and returns it as valid UTF-8: b itself
// when it is, else a copy appended to scratch with every invalid sequence
// (including a rune cut in half) replaced by U+FFFD.
func text(b, scratch []byte) ([]byte, []byte) {
	if len(b) > maxTextLen {
		b = b[:maxTextLen]
	}
	if utf8.Valid(b) {
		return b, scratch
	}
	start := len(scratch)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		scratch = utf8.AppendRune(scratch, r) // RuneError for invalid bytes
		b = b[n:]
	}
	return scratch[start:], scratch
}
