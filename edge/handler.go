package edge

import (
	"encoding/binary"
	"errors"
	"net"
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
	maxIDLen   = 128
	maxTextLen = 2048
)

// Invalid reasons recorded in RawHit.invalid_reason.
const (
	reasonMissingCID = "missing_cid"
	reasonBadCID     = "bad_cid"
	reasonBadKind    = "bad_kind"
	reasonBadID      = "bad_id"
)

// The visitor cookie the edge reads (setting it is consent-dependent).
const visitorCookie = "ppuid"

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) {
	case "/p.gif":
		s.pixel(ctx)
	case "/":
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("pixelpipe edge: embed <img src=\"/p.gif?cid=CONTENT_ID\">\n")
	default:
		ctx.Error("not found: the pixel is at /p.gif?cid=CONTENT_ID", fasthttp.StatusNotFound)
	}
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
	h.SetBytesKV(headerCacheControl, valueNoCache)
	h.SetBytesKV(headerPragma, valuePragma)
	h.SetBytesKV(headerExpires, valueExpires)
	ctx.SetBody(transparentGIF)
	s.record(ctx)
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

// record encodes the hit and appends it to the spool before the handler
// returns, so the hit is safe (as the spool's sync mode says) before the
// answer is written.
func (s *Server) record(ctx *fasthttp.RequestCtx) {
	if !s.pub.enter() {
		s.m.dropped.Inc()
		return
	}
	defer s.pub.leave()

	now := s.now()
	seq := s.seq.Add(1)
	rec := s.pool.Get().(*record)
	defer s.pool.Put(rec)
	f := &rec.fields
	binary.BigEndian.PutUint64(f.EventID[:8], s.idPrefix)
	binary.BigEndian.PutUint64(f.EventID[8:], seq)
	f.ReceivedAtMs = now.UnixMilli()
	f.NodeID = s.cfg.NodeID
	f.BootMs = s.bootMs
	f.Seq = seq

	args := ctx.QueryArgs()
	f.ContentID = args.Peek("cid")
	f.SiteID = args.Peek("site")
	f.CampaignID = args.Peek("cmp")
	f.UserID = args.Peek("uid")
	ref := args.Peek("ref")
	if len(ref) == 0 {
		ref = ctx.Request.Header.Referer()
	}
	// Free text goes into protobuf string fields, which must be UTF-8:
	// invalid bytes become U+FFFD (in the record's scratch space).
	rec.scratch = rec.scratch[:0]
	f.PageURL, rec.scratch = text(args.Peek("url"), rec.scratch)
	f.Referrer, rec.scratch = text(ref, rec.scratch)
	f.UserAgent, rec.scratch = text(ctx.Request.Header.UserAgent(), rec.scratch)
	f.CookieID = ctx.Request.Header.Cookie(visitorCookie)
	f.ClientIP = clientIP(ctx.RemoteIP())

	var ok bool
	f.Kind, ok = parseKind(args.Peek("k"))
	// Ids end up in keys and URLs: anything outside their byte class is
	// dropped, never passed on, and the hit is marked invalid.
	if !validID(f.SiteID) || !validID(f.CampaignID) || !validID(f.CookieID) || len(f.UserID) > maxIDLen || !utf8.Valid(f.UserID) {
		f.InvalidReason = reasonBadID
		f.SiteID, f.CampaignID, f.CookieID, f.UserID = nil, nil, nil, nil
	}
	if !ok {
		f.InvalidReason = reasonBadKind
	}
	switch {
	case len(f.ContentID) == 0:
		f.InvalidReason = reasonMissingCID
	case !validID(f.ContentID):
		f.InvalidReason = reasonBadCID
		f.ContentID = nil
	}

	key, _ := s.keyer.Key(f.ReceivedAtMs, f.SiteID, f.UserID, f.CookieID, f.ClientIP, f.UserAgent)
	rec.buf = schemas.AppendVisitorPartitionKey(rec.buf[:0], key)
	rec.buf = binary.BigEndian.AppendUint64(rec.buf, uint64(f.ReceivedAtMs))
	rec.buf = schemas.AppendRawHit(rec.buf, f)
	invalid := f.InvalidReason != ""
	rec.fields = schemas.HitFields{} // drop references to the request's memory

	if err := s.spool.Append(rec.buf); err != nil {
		s.m.dropped.Inc()
		if !errors.Is(err, spool.ErrFull) {
			s.m.spoolErrors.Inc()
			s.logSpoolError(err)
		}
		return
	}
	if invalid {
		s.m.invalid.Inc()
	} else {
		s.m.accepted.Inc()
	}
}

func (s *Server) now() time.Time {
	if s.clock != nil {
		return s.clock()
	}
	return time.Now()
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

// validID accepts empty ids and ids of at most maxIDLen bytes from
// [A-Za-z0-9._:-]; ids appear in Redis keys and URLs, so nothing else.
func validID(b []byte) bool {
	if len(b) > maxIDLen {
		return false
	}
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
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

// clientIP returns the 4-byte form of IPv4 addresses and the 16-byte form of
// the rest, without allocating.
func clientIP(ip net.IP) []byte {
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	return ip
}
