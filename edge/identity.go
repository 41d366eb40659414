package edge

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pixelpipe/pixelpipe/schemas"
)

// Signed pixels. A pixel or beacon URL whose query string ends in
//
//	...&kid=KEY_ID[&exp=UNIX_SECONDS]&sig=SIG[&cb=ANY]
//
// is verified when SIG is the unpadded base64url HMAC-SHA256, under the
// click key named KEY_ID (Config.ClickKeys), of "pixelpipe-pixel-v1\n"
// followed by every byte of the query string before "&sig=", exactly as
// sent, and exp (if signed) has not passed. Only a cache-buster cb may
// follow sig: it is not covered. SignPixel computes SIG. A verified hit has
// RawHit.verified set; an unverified one is recorded as usual, so forged
// impressions can be told apart downstream.

// SignPixel returns the sig parameter for a pixel whose query string, up to
// where "&sig=" will be appended, is query (already URL-encoded).
func SignPixel(key []byte, query string) string {
	return base64.RawURLEncoding.EncodeToString(pixelMAC(key, []byte(query)))
}

func pixelMAC(key, signed []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("pixelpipe-pixel-v1\n"))
	m.Write(signed)
	return m.Sum(nil)
}

var sigParam = []byte("&sig=")

// verifyPixel checks the signature of a pixel's raw query string qs, which
// has a sig parameter; kid and exp are the query's kid and exp parameters.
// It returns why the pixel does not verify (schemas.Signature*), or "".
func verifyPixel(keys map[string][]byte, kid, exp, qs []byte, now time.Time) schemas.SignatureError {
	i := bytes.LastIndex(qs, sigParam)
	if i < 0 {
		return schemas.SignatureBad // sig was the first parameter: nothing signed
	}
	signed, sig := qs[:i], qs[i+len(sigParam):]
	if j := bytes.IndexByte(sig, '&'); j >= 0 {
		rest := sig[j:]
		sig = sig[:j]
		if !bytes.HasPrefix(rest, []byte("&cb=")) || bytes.IndexByte(rest[1:], '&') >= 0 {
			return schemas.SignatureUnsignedTail
		}
	}
	return sigError(keys, kid, exp, sig, now, func(key []byte) []byte { return pixelMAC(key, signed) })
}

// Custom properties: query parameters "p.KEY=VALUE" of a pixel or beacon,
// or the "props" object of a batch event. Keys are 1-64 bytes of the id
// class; values are cut at maxPropValue bytes and made valid UTF-8. More
// than maxProps, or a bad key, makes the hit invalid (bad_props) and its
// properties are dropped.
const (
	maxProps     = 20
	maxPropKey   = 64
	maxPropValue = 256
)

var propPrefix = []byte("p.")

// checkProps validates props in place (values cut and made UTF-8 in
// scratch) and reports whether they are acceptable.
func checkProps(props []schemas.Prop, scratch []byte) ([]schemas.Prop, []byte, bool) {
	if len(props) > maxProps {
		return nil, scratch, false
	}
	for i := range props {
		p := &props[i]
		if len(p.Key) == 0 || len(p.Key) > maxPropKey || !validID(p.Key) {
			return nil, scratch, false
		}
		v := p.Value
		if len(v) > maxPropValue {
			v = v[:maxPropValue]
		}
		p.Value, scratch = text(v, scratch)
	}
	return props, scratch, true
}

// Request headers recorded for bot and prefetch labelling.
const (
	maxPurposeLen  = 64
	maxLanguageLen = 256
)

// reqHeaders are the request headers a hit records, read by one pass over
// the request's headers (they were 14 RequestHeader.Peek, each normalizing
// its name and scanning the headers). The slices are borrowed.
type reqHeaders struct {
	userAgent, referer  []byte
	gpc, dnt            []byte // Sec-GPC, DNT
	secPurpose, purpose []byte
	acceptLanguage      []byte
	present             uint32 // schemas.Header* bits of the headers present and not empty
}

// read fills r from h. As with Peek, the first occurrence of a header
// counts (User-Agent is fasthttp's own, the last one); header names are in
// fasthttp's canonical form (the server normalizes them: "Sec-Gpc", "Dnt").
func (r *reqHeaders) read(h *fasthttp.RequestHeader) {
	*r = reqHeaders{userAgent: h.UserAgent()}
	var seen uint32
	for k, v := range h.All() {
		var dst *[]byte
		var bit uint32 // its present bit; bits 28-31 for headers without one
		switch string(k) {
		case "Accept":
			bit = schemas.HeaderAccept
		case "Accept-Language":
			dst, bit = &r.acceptLanguage, schemas.HeaderAcceptLanguage
		case "Accept-Encoding":
			bit = schemas.HeaderAcceptEncoding
		case "Sec-Fetch-Site":
			bit = schemas.HeaderSecFetchSite
		case "Sec-Fetch-Mode":
			bit = schemas.HeaderSecFetchMode
		case "Sec-Ch-Ua":
			bit = schemas.HeaderSecChUA
		case "Referer":
			dst, bit = &r.referer, schemas.HeaderReferer
		case "Cookie":
			bit = schemas.HeaderCookie
		case "Sec-Gpc":
			dst, bit = &r.gpc, 1<<28
		case "Dnt":
			dst, bit = &r.dnt, 1<<29
		case "Sec-Purpose":
			dst, bit = &r.secPurpose, 1<<30
		case "Purpose":
			dst, bit = &r.purpose, 1<<31
		default:
			continue
		}
		if seen&bit != 0 {
			continue
		}
		seen |= bit
		if dst != nil {
			*dst = v
		}
		if len(v) > 0 && bit < 1<<28 {
			r.present |= bit
		}
	}
}

// newVisitorID appends a random 128-bit visitor id, as 32 hex digits, to dst.
func newVisitorID(dst []byte) []byte {
	var id [16]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails (Go 1.24)
	return hex.AppendEncode(dst, id[:])
}

// setVisitorCookie sets the visitor cookie on the answer.
func (s *Server) setVisitorCookie(ctx *fasthttp.RequestCtx, id []byte) {
	c := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(c)
	c.SetKey(s.cfg.VisitorCookie)
	c.SetValueBytes(id)
	c.SetPath("/")
	c.SetMaxAge(int(s.cfg.VisitorCookieTTL / time.Second))
	c.SetSecure(true)
	c.SetHTTPOnly(true)
	c.SetSameSite(fasthttp.CookieSameSiteNoneMode)
	if s.cfg.CookieDomain != "" {
		c.SetDomain(s.cfg.CookieDomain)
	}
	ctx.Response.Header.SetCookie(c)
}
