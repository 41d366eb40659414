package edge

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
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

// verifyPixel checks the signature of a pixel's raw query string qs.
func verifyPixel(keys map[string][]byte, args *fasthttp.Args, qs []byte, now time.Time) bool {
	i := bytes.LastIndex(qs, sigParam)
	if i < 0 || len(keys) == 0 {
		return false
	}
	signed, sig := qs[:i], qs[i+len(sigParam):]
	if j := bytes.IndexByte(sig, '&'); j >= 0 {
		rest := sig[j:]
		sig = sig[:j]
		if !bytes.HasPrefix(rest, []byte("&cb=")) || bytes.IndexByte(rest[1:], '&') >= 0 {
			return false
		}
	}
	key, ok := keys[string(args.Peek("kid"))]
	if !ok || len(sig) == 0 || len(sig) > 64 {
		return false
	}
	if exp := args.Peek("exp"); len(exp) > 0 {
		e, err := strconv.ParseInt(string(exp), 10, 64)
		if err != nil || e <= 0 || now.Unix() > e {
			return false
		}
	}
	var got [64]byte
	n, err := base64.RawURLEncoding.Decode(got[:], sig)
	if err != nil {
		return false
	}
	return hmac.Equal(got[:n], pixelMAC(key, signed))
}

// Custom properties: query parameters "p.KEY=VALUE" of a pixel or beacon,
// or the "props" object of a batch event. Keys are 1-64 bytes of the id
// class; values are cut at maxPropValue bytes and made valid UTF-8. More
// than maxProps, or a bad key, makes the hit invalid (bad_props) and its
// properties are dropped.
const (
	maxProps       = 20
	maxPropKey     = 64
	maxPropValue   = 256
	reasonBadProps = "bad_props"
)

var propPrefix = []byte("p.")

// appendQueryProps appends the p.* parameters of args to dst; a plain
// pixel without any costs one scan of the query string and no allocation.
func appendQueryProps(dst []schemas.Prop, args *fasthttp.Args, qs []byte) []schemas.Prop {
	if !bytes.HasPrefix(qs, propPrefix) && !bytes.Contains(qs, []byte("&p.")) {
		return dst
	}
	for k, v := range args.All() {
		if bytes.HasPrefix(k, propPrefix) {
			dst = append(dst, schemas.Prop{Key: k[len(propPrefix):], Value: v})
		}
	}
	return dst
}

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

func presentHeaders(h *fasthttp.RequestHeader) uint32 {
	var bits uint32
	for _, c := range []struct {
		name string
		bit  uint32
	}{
		{"Accept", schemas.HeaderAccept},
		{"Accept-Language", schemas.HeaderAcceptLanguage},
		{"Accept-Encoding", schemas.HeaderAcceptEncoding},
		{"Sec-Fetch-Site", schemas.HeaderSecFetchSite},
		{"Sec-Fetch-Mode", schemas.HeaderSecFetchMode},
		{"Sec-Ch-Ua", schemas.HeaderSecChUA},
		{"Referer", schemas.HeaderReferer},
		{"Cookie", schemas.HeaderCookie},
	} {
		if len(h.Peek(c.name)) > 0 {
			bits |= c.bit
		}
	}
	return bits
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
