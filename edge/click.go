package edge

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pixelpipe/pixelpipe/schemas"
)

// Click redirects go only where a signature or the site's allow-list says:
// never an open redirect.
//
// A signed click URL is
//
//	/c?cid=CID&u=DEST&kid=KEY_ID&exp=UNIX_SECONDS&sig=SIG
//
// where SIG is the unpadded base64url HMAC-SHA256, under the key named
// KEY_ID, of "pixelpipe-click-v1\n" + CID + "\n" + EXP + "\n" + DEST (DEST
// and the rest as they read after URL-decoding; exp may be empty for no
// expiry). SignClick computes it.

var (
	errBadDestination = errors.New("destination is not an absolute http(s) URL")
	errNotAllowed     = errors.New("destination neither signed nor on the site's allow-list")
)

const maxDestLen = 2048

// SignClick returns the sig parameter of a click to dest for content cid,
// valid until exp (Unix seconds; 0 means no expiry).
func SignClick(key []byte, cid, dest string, exp int64) string {
	e := ""
	if exp != 0 {
		e = strconv.FormatInt(exp, 10)
	}
	return base64.RawURLEncoding.EncodeToString(clickMAC(key, []byte(cid), []byte(e), []byte(dest)))
}

func clickMAC(key, cid, exp, dest []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("pixelpipe-click-v1\n"))
	m.Write(cid)
	m.Write([]byte{'\n'})
	m.Write(exp)
	m.Write([]byte{'\n'})
	m.Write(dest)
	return m.Sum(nil)
}

// verifyClick reports whether sig proves dest for cid under the key kid,
// and that exp (if any) has not passed at now.
func verifyClick(keys map[string][]byte, kid, cid, dest, exp, sig []byte, now time.Time) bool {
	return verifySig(keys, kid, exp, sig, now, func(key []byte) []byte { return clickMAC(key, cid, exp, dest) })
}

// verifySig is the check signed clicks and pixels share: the key kid
// exists, exp (if any) has not passed at now, and sig (unpadded base64url)
// equals mac(key).
func verifySig(keys map[string][]byte, kid, exp, sig []byte, now time.Time, mac func(key []byte) []byte) bool {
	return sigError(keys, kid, exp, sig, now, mac) == ""
}

// sigError returns why sig is not a valid signature under the key named kid
// (schemas.Signature*: unknown_key, bad_signature, expired), or "". The MAC
// is checked before the expiry, so only a genuine signature is reported
// expired.
func sigError(keys map[string][]byte, kid, exp, sig []byte, now time.Time, mac func(key []byte) []byte) schemas.SignatureError {
	key, ok := keys[string(kid)]
	if !ok {
		return schemas.SignatureUnknownKey
	}
	var got [48]byte // 64 base64 characters at most
	if len(sig) == 0 || len(sig) > 64 {
		return schemas.SignatureBad
	}
	n, err := base64.RawURLEncoding.Decode(got[:], sig)
	if err != nil || !hmac.Equal(got[:n], mac(key)) {
		return schemas.SignatureBad
	}
	if len(exp) > 0 {
		e, err := strconv.ParseInt(string(exp), 10, 64)
		if err != nil || e <= 0 || now.Unix() > e {
			return schemas.SignatureExpired
		}
	}
	return ""
}

// redirectLocation parses dest and returns the Location to send, built from
// the parsed URL, and its host in lower case. Only absolute http and https
// URLs with an ASCII host and no user info pass; control characters,
// spaces and backslashes anywhere are refused, so no header can be split
// and no browser can read the URL differently from here.
func redirectLocation(dest []byte) (string, string, error) {
	if len(dest) == 0 || len(dest) > maxDestLen {
		return "", "", errBadDestination
	}
	for _, c := range dest {
		if c <= ' ' || c == 0x7f || c == '\\' || c >= 0x80 {
			return "", "", errBadDestination
		}
	}
	u, err := url.Parse(string(dest))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Opaque != "" || u.User != nil || u.Host == "" {
		return "", "", errBadDestination
	}
	host := strings.ToLower(u.Hostname())
	if host == "" || strings.HasSuffix(host, ".") {
		return "", "", errBadDestination
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", "", errBadDestination
		}
	}
	u.Host = strings.ToLower(u.Host)
	u.Fragment, u.RawFragment = "", ""
	loc := u.String()
	if strings.ContainsAny(loc, "\r\n\\") {
		return "", "", errBadDestination
	}
	return loc, host, nil
}

// hostAllowed reports whether host is on site's allow-list (or the list for
// every site, "*"). An entry "shop.example" allows that host; ".shop.example"
// allows its subdomains too.
func hostAllowed(allow map[string][]string, site []byte, host string) bool {
	for _, list := range [][]string{allow[string(site)], allow["*"]} {
		for _, a := range list {
			if host == a || (strings.HasPrefix(a, ".") && (host == a[1:] || strings.HasSuffix(host, a))) {
				return true
			}
		}
	}
	return false
}
