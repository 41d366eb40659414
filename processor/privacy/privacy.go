// Package privacy removes personal data from what the processor writes:
// e-mail addresses in URLs and parameters, also when percent-encoded, any
// number of times. IP truncation is in the processor itself (TruncateIP).
package privacy

import (
	"regexp"
	"strings"
)

// Redacted replaces each e-mail address.
const Redacted = "[redacted-email]"

// emailRE is what counts as an e-mail address. The local part leaves out
// '%' on purpose: escapes are decoded before matching.
var emailRE = regexp.MustCompile(`[A-Za-z0-9._+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}`)

// HasEmail reports whether s, fully percent-decoded, holds an e-mail address.
func HasEmail(s string) bool {
	return emailRE.MatchString(DecodeAll(s))
}

// RedactPII returns s with every e-mail address replaced by Redacted, also
// addresses that only appear after percent-decoding, and s itself (no
// allocation) when there is none. It is idempotent, and DecodeAll of its
// result holds no address. The structure of a URL is kept: only the runs
// between separators (/ ? # & = ; , and space) that hold an address are
// rewritten, decoded and re-escaped.
func RedactPII(s string) string {
	if !mayHoldAt(s) || !HasEmail(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && !isSep(s[i]) {
			continue
		}
		run := s[start:i]
		if d := DecodeAll(run); emailRE.MatchString(d) {
			for emailRE.MatchString(d) {
				d = emailRE.ReplaceAllString(d, Redacted)
			}
			escape(&b, d)
		} else {
			b.WriteString(run)
		}
		if i < len(s) {
			b.WriteByte(s[i])
		}
		start = i + 1
	}
	return b.String()
}

// mayHoldAt reports whether decoding s can give an '@': only a literal '@',
// "%40", or a "%25" (which decodes to a '%' that may start another escape)
// can. Most URLs have none and skip the decoding.
func mayHoldAt(s string) bool {
	if strings.IndexByte(s, '@') >= 0 {
		return true
	}
	for i := strings.IndexByte(s, '%'); i >= 0 && i+2 < len(s); {
		if a, b := s[i+1], s[i+2]; a == '4' && b == '0' || a == '2' && b == '5' {
			return true
		}
		j := strings.IndexByte(s[i+1:], '%')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

func isSep(c byte) bool {
	switch c {
	case '/', '?', '#', '&', '=', ';', ',', ' ':
		return true
	}
	return false
}

// escape writes d with separators, '%', '+', controls and non-ASCII bytes
// percent-encoded, so that decoding gives d back and no new separator appears.
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
	for {
		d := decodeOnce(s)
		if d == s {
			return s
		}
		s = d
	}
}

func decodeOnce(s string) string {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
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
