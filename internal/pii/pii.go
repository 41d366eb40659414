// Package pii finds and removes personal data from free text that a hit
// carries (page URLs, referrers, custom property values, user agents):
// e-mail addresses and phone numbers, also when percent-encoded any number
// of times. The edge redacts before it encodes a raw hit, so pixel.hits.v1
// never holds them; the processor runs the same rules again on what it
// reads (hits spooled by older edges). IP addresses are cut to their
// network by AppendTruncatedIP.
//
// What counts as a phone number is a trade-off between missing numbers and
// damaging ids and timestamps; the rule is on HasPhone. Everything here is
// safe for concurrent use. Find does not allocate; Redact and
// AppendRedacted allocate only when there is something to redact.
package pii

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
)

// Replacements of what is redacted.
const (
	RedactedEmail = "[redacted-email]"
	RedactedPhone = "[redacted-phone]"
)

// Kind is a set of what Find found.
type Kind uint8

// Kinds of personal data.
const (
	Email Kind = 1 << iota
	Phone
)

// emailRE is what counts as an e-mail address. The local part leaves out
// '%' on purpose: escapes are decoded before matching.
var emailRE = regexp.MustCompile(`[A-Za-z0-9._+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}`)

// HasEmail reports whether s, fully percent-decoded, holds an e-mail address.
func HasEmail(s string) bool {
	return emailRE.MatchString(DecodeAll(s))
}

// HasPhone reports whether s, fully percent-decoded, holds a phone number
// by the rule below, without looking at parameter names.
//
// A phone number is a run of 9 to 15 digits (E.164 has at most 15) that
// may contain single separators (space, '-', '.', '(', ')', '+') and is
// not glued to a letter or digit on either side (so hex ids, UUIDs and
// version strings inside words never match). Such a run is a phone number
// when
//   - it starts with '+' (international form: +14155552671, +44 20 7946 0958);
//   - or it is grouped by a space, '-', '(' , ')' or an inner '+'
//     (415-555-2671, (415) 555 2671, 06 12 34 56 78);
//   - or it is bare digits starting with one or two zeros and having at
//     least 10 digits (national 0612345678, international 0044...);
//   - or, whatever its form, it is the value of a parameter whose name
//     says phone (phone, mobile, msisdn, tel, fax, cell, sms, whatsapp).
//
// The trade-off: bare digit runs not starting with 0 are order ids, unix
// timestamps (10 or 13 digits) and cache-busters far more often than
// phone numbers, so a bare 4155552671 is kept unless its parameter is
// named like a phone; runs grouped only by dots (IP addresses, versions,
// 1.234.567.890) are kept unless they start with '+' or their parameter is
// named like a phone; a zero-padded numeric id of 10 or more digits
// (0012345678) and space-grouped number lists (100 200 300 400) are
// redacted although they are not phone numbers.
func HasPhone(s string) bool {
	d := DecodeAll(s)
	_, _, ok := nextPhone(d, 0, false)
	return ok
}

// Find reports what Redact(string(b)) would redact in b, with key the name
// of the parameter b is the value of (nil for a URL or free text: the
// names of the URL's own parameters are used). It does not allocate.
func Find(key, b []byte) Kind {
	if !mayHold(b) {
		return 0
	}
	sc := scratchPool.Get().(*scratch)
	k := find(sc, key, b)
	scratchPool.Put(sc)
	return k
}

// Redact returns s with every e-mail address and phone number replaced by
// RedactedEmail and RedactedPhone, also those that only appear after
// percent-decoding, and s itself (no allocation) when there is none. It is
// idempotent, and DecodeAll of its result holds neither. The structure of
// a URL is kept: only the runs between separators (/ ? # & = ; ,) that
// hold personal data are rewritten, decoded and re-escaped.
func Redact(s string) string { return RedactParam("", s) }

// RedactPII is Redact; the name the processor and FuzzRedactPII use.
func RedactPII(s string) string { return Redact(s) }

// RedactParam is Redact for the value of the parameter named key, which
// decides whether bare digit runs are phone numbers (see HasPhone).
func RedactParam(key, s string) string {
	if !mayHold(s) {
		return s
	}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	if find(sc, key, s) == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + len(RedactedEmail))
	sc.key = append(sc.key[:0], key...)
	sc.value = len(key) > 0
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && !isSep(s[i]) {
			continue
		}
		run := s[start:i]
		sc.dec = decodeAll(sc.dec[:0], run)
		if holds(sc.dec, sc.key) != 0 {
			escape(&b, redactDecoded(string(sc.dec), string(sc.key)))
		} else {
			b.WriteString(run)
		}
		nextKey(sc, s, i)
		if i < len(s) {
			b.WriteByte(s[i])
		}
		start = i + 1
	}
	return b.String()
}

// AppendRedacted appends b, redacted as RedactParam(key, b) does, to dst.
// Call it only when Find reported something: it allocates.
func AppendRedacted(dst, key, b []byte) []byte {
	return append(dst, RedactParam(string(key), string(b))...)
}

type scratch struct {
	dec, key []byte
	// value: the current run follows a '=', so it is a value, never a name.
	value bool
}

var scratchPool = sync.Pool{New: func() any { return &scratch{dec: make([]byte, 0, 256), key: make([]byte, 0, 64)} }}

// find walks the runs of s, decodes each fully into sc and reports what
// they hold.
func find[K, T string | []byte](sc *scratch, key K, s T) Kind {
	var k Kind
	sc.key = append(sc.key[:0], key...)
	sc.value = len(key) > 0
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && !isSep(s[i]) {
			continue
		}
		sc.dec = decodeAll(sc.dec[:0], s[start:i])
		k |= holds(sc.dec, sc.key)
		nextKey(sc, s, i)
		start = i + 1
	}
	return k
}

// nextKey sets sc.key to the name of the parameter the run after s[i]
// belongs to: the decoded run sc.dec when s[i] is '=', else none.
func nextKey[T string | []byte](sc *scratch, s T, i int) {
	eq := i < len(s) && s[i] == '='
	if eq && !sc.value {
		sc.key = append(sc.key[:0], sc.dec...)
	} else {
		sc.key = sc.key[:0]
	}
	sc.value = eq
}

func holds(d, key []byte) Kind {
	var k Kind
	if bytes.IndexByte(d, '@') >= 0 && emailRE.Match(d) {
		k |= Email
	}
	if _, _, ok := nextPhone(d, 0, phoneName(key)); ok {
		k |= Phone
	}
	return k
}

// redactDecoded replaces addresses and numbers in a decoded run until none
// is left (a replacement never creates a new one, but the loop makes sure).
func redactDecoded(d, key string) string {
	named := phoneName([]byte(key))
	for range 8 {
		changed := false
		if emailRE.MatchString(d) {
			d = emailRE.ReplaceAllString(d, RedactedEmail)
			changed = true
		}
		if s, e, ok := nextPhone(d, 0, named); ok {
			var b strings.Builder
			for ok {
				b.WriteString(d[:s])
				b.WriteString(RedactedPhone)
				d = d[e:]
				s, e, ok = nextPhone(d, 0, named)
			}
			b.WriteString(d)
			d = b.String()
			changed = true
		}
		if !changed {
			return d
		}
	}
	return d
}

// mayHold reports whether decoding s can give an e-mail address or a phone
// number. It decodes single escapes on the fly and answers true only for an
// '@', a '%' that decoding may turn into the start of a new escape (an
// escaped '%', double encoding, or a bare '%': decode fully to know), or 9
// digits in one run of digits and phone separators. Most URLs and user agents have
// none, and cost this one scan.
func mayHold[T string | []byte](s T) bool {
	digits := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch class[c] {
		case cOther:
			digits = 0
		case cDigit:
			if digits++; digits >= 9 {
				return true
			}
		case cAt:
			return true
		case cPercent:
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return true // a bare '%' may start an escape after decoding
			}
			c = unhex(s[i+1])<<4 | unhex(s[i+2])
			i += 2
			switch class[c] {
			case cOther:
				digits = 0
			case cDigit:
				if digits++; digits >= 9 {
					return true
				}
			case cAt, cPercent: // an address, or double encoding
				return true
			}
		}
	}
	return false
}

// Byte classes of mayHold.
const (
	cOther uint8 = iota
	cDigit
	cSep // a phone separator
	cAt
	cPercent
)

var class = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = cDigit
	}
	for _, c := range []byte(" -.()+") {
		t[c] = cSep
	}
	t['@'], t['%'] = cAt, cPercent
	return t
}()

func isPhoneSep(c byte) bool {
	switch c {
	case ' ', '-', '.', '(', ')', '+':
		return true
	}
	return false
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isAlnum(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// nextPhone returns the bounds of the first phone number in d at or after
// from (see HasPhone); named says the value's parameter is named like a
// phone, which makes any 9-15 digit run count.
func nextPhone[T string | []byte](d T, from int, named bool) (start, end int, ok bool) {
	for i := from; i < len(d); {
		if !isDigit(d[i]) && !isPhoneSep(d[i]) {
			i++
			continue
		}
		j := i + 1
		for j < len(d) && (isDigit(d[j]) || isPhoneSep(d[j])) {
			j++
		}
		if s, e, ok := phoneIn(d, i, j, named); ok {
			return s, e, true
		}
		i = j
	}
	return 0, 0, false
}

// phoneIn judges the maximal run d[i:j] of digits and separators.
func phoneIn[T string | []byte](d T, i, j int, named bool) (int, int, bool) {
	// Trim separators that cannot start or end a number: keep a leading
	// '+' or '(' and a trailing ')'.
	for i < j && !isDigit(d[i]) && !(d[i] == '+' || d[i] == '(') {
		i++
	}
	for j > i && !isDigit(d[j-1]) && d[j-1] != ')' {
		j--
	}
	if j > i && d[j-1] == ')' && !hasOpen(d, i, j) {
		j-- // a closing parenthesis of the surrounding text
	}
	if i == j || glued(d, i-1, -1) || glued(d, j, 1) {
		return 0, 0, false // part of a word: an id, a hash, a version
	}
	digits, run, grouped, dots := 0, 0, false, false
	for k := i; k < j; k++ {
		c := d[k]
		if isDigit(c) {
			digits, run = digits+1, 0
			continue
		}
		if run++; run > 2 {
			return 0, 0, false // not a single separator: not one number
		}
		switch {
		case c == '.':
			dots = true
		case c == '+' && k == i:
		default:
			grouped = true
		}
	}
	if digits < 9 || digits > 15 {
		return 0, 0, false
	}
	first := i
	for first < j && !isDigit(d[first]) {
		first++
	}
	zeroLed := d[first] == '0' && !(first+2 < j && d[first+1] == '0' && d[first+2] == '0')
	switch {
	case named, d[i] == '+', grouped:
	case !dots && zeroLed && digits >= 10:
	default:
		return 0, 0, false
	}
	return i, j, true
}

func hasOpen[T string | []byte](d T, i, j int) bool {
	for k := i; k < j; k++ {
		if d[k] == '(' {
			return true
		}
	}
	return false
}

// glued reports whether d[k] is a letter or digit, or a '.' or '-' next
// to one on the far side (TP1A.220624, v2-4155552671).
func glued[T string | []byte](d T, k, dir int) bool {
	if k < 0 || k >= len(d) {
		return false
	}
	if isAlnum(d[k]) {
		return true
	}
	n := k + dir
	return (d[k] == '.' || d[k] == '-') && n >= 0 && n < len(d) && isAlnum(d[n])
}

// phoneName reports whether a parameter name says its value is a phone
// number.
func phoneName(key []byte) bool {
	if len(key) == 0 || len(key) > 64 || bytes.Contains(key, []byte("[redacted-")) {
		return false
	}
	var buf [64]byte
	low := buf[:len(key)]
	for i, c := range key {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		low[i] = c
	}
	if bytes.Contains(low, []byte("phone")) || bytes.Contains(low, []byte("mobile")) ||
		bytes.Contains(low, []byte("msisdn")) || bytes.Contains(low, []byte("whatsapp")) {
		return true
	}
	switch string(low) {
	case "tel", "fax", "cell", "sms":
		return true
	}
	return false
}

func isSep(c byte) bool {
	switch c {
	case '/', '?', '#', '&', '=', ';', ',':
		return true
	}
	return false
}

// escape writes d with separators, '%', '+', controls, spaces and
// non-ASCII bytes percent-encoded, so that decoding gives d back and no new
// separator appears.
func escape(b *strings.Builder, d string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(d); i++ {
		c := d[i]
		if isSep(c) || c == '%' || c == '+' || c < 0x21 || c >= 0x7f {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
}

// DecodeAll percent-decodes s until nothing changes. Malformed escapes stay
// as they are; '+' stays '+'.
func DecodeAll(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	return string(decodeAll(nil, s))
}

// decodeAll appends s to dst and percent-decodes the appended part in place
// until nothing changes.
func decodeAll[T string | []byte](dst []byte, s T) []byte {
	start := len(dst)
	dst = append(dst, s...)
	for {
		b := dst[start:]
		w, changed := 0, false
		for i := 0; i < len(b); i++ {
			if b[i] == '%' && i+2 < len(b) && isHex(b[i+1]) && isHex(b[i+2]) {
				b[w] = unhex(b[i+1])<<4 | unhex(b[i+2])
				w, i, changed = w+1, i+2, true
				continue
			}
			b[w] = b[i]
			w++
		}
		dst = dst[:start+w]
		if !changed {
			return dst
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
