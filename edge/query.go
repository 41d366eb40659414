package edge

import (
	"bytes"

	"github.com/pixelpipe/pixelpipe/schemas"
)

// fromQuery reads the parameters, and the p.* properties (appended to
// props), in one pass over the raw query string q, with the semantics of
// fasthttp's Args, which it replaces on the request path: '&' separates
// parameters, the first '=' a name from its value, names and values are
// percent-decoded with '+' as a space and a malformed escape kept as is, a
// parameter that is empty or only "=" is not one, and the first occurrence
// of a name is the one that counts. FuzzParseHit and FuzzFromQuery check
// it against Args.
//
// Unlike Args it decodes a name only when it holds an escape, and a value
// only when the edge keeps it and it holds one: everything else is a slice
// of q. Decoded bytes go to buf, which it returns (extended); the results
// borrow q and buf. It does not allocate once buf has len(q) bytes of
// capacity to spare (the record's buffer grows to the longest query string
// seen, which the request line bound limits).
func (p *hitParams) fromQuery(q, buf []byte, props []schemas.Prop) ([]byte, []schemas.Prop) {
	*p = hitParams{}
	if cap(buf)-len(buf) < len(q) {
		// Decoding never lengthens, so the whole string fits: the slices
		// handed out stay in one array.
		buf = append(make([]byte, 0, len(buf)+len(q)), buf...)
	}
	var seen uint32
	for len(q) > 0 {
		// One table lookup a byte finds the ends of the name and value
		// and whether either holds an escape.
		i, kEsc := 0, false
		for ; i < len(q); i++ {
			if t := queryScan[q[i]]; t != 0 {
				if t != '%' {
					break
				}
				kEsc = true
			}
		}
		k, v := q[:i], q[i:i]
		vEsc := false
		if i < len(q) && q[i] == '=' {
			j := i + 1
			for ; j < len(q); j++ {
				if t := queryScan[q[j]]; t != 0 && t != '=' {
					if t == '&' {
						break
					}
					vEsc = true
				}
			}
			v = q[i+1 : j]
			i = j
		}
		if i < len(q) {
			i++ // the '&'
		}
		q = q[i:]
		if len(k) == 0 && len(v) == 0 {
			continue // "" or "=": Args skips it
		}
		p.n++
		mark := len(buf)
		if kEsc {
			start := len(buf)
			buf = decodeArg(buf, k)
			k = buf[start:]
		}
		dst, bit := p.field(k)
		if dst == nil {
			if !bytes.HasPrefix(k, propPrefix) {
				buf = buf[:mark] // a name the edge does not keep
				continue
			}
			if vEsc {
				start := len(buf)
				buf = decodeArg(buf, v)
				v = buf[start:]
			}
			props = append(props, schemas.Prop{Key: k[len(propPrefix):], Value: v})
			continue
		}
		buf = buf[:mark] // the name is matched: its decoded copy is not kept
		if seen&bit != 0 {
			continue
		}
		seen |= bit
		if vEsc {
			start := len(buf)
			buf = decodeArg(buf, v)
			v = buf[start:]
		}
		*dst = v
	}
	return buf, props
}

// queryScan marks the bytes fromQuery stops at: the separators, and the
// escapes '%' and '+' (as '%').
var queryScan = [256]byte{'&': '&', '=': '=', '%': '%', '+': '%'}

// decodeArg appends src percent-decoded to dst as fasthttp decodes query
// arguments: "%XX" is the byte XX, '+' is a space, a '%' not followed by
// two hex digits stays a '%', and a '%' among the last two bytes ends the
// decoding, the rest copied as is.
func decodeArg(dst, src []byte) []byte {
	n := len(dst)
	dst = append(dst, src...) // the room for it; decoding never lengthens
	out := dst[n:]
	w := 0
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch c {
		case '%':
			if i+3 > len(src) {
				w += copy(out[w:], src[i:])
				return dst[:n+w]
			}
			hi, lo := unhexTable[src[i+1]], unhexTable[src[i+2]]
			if hi|lo < 16 {
				c = hi<<4 | lo
				i += 2
			}
		case '+':
			c = ' '
		}
		out[w] = c
		w++
	}
	return dst[:n+w]
}

// unhexTable maps a hex digit to its value and any other byte to 0xff.
var unhexTable = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c-'a') + 10
		t[c-'a'+'A'] = byte(c-'a') + 10
	}
	return t
}()

// field returns where the value of the pixel parameter named k goes and its
// bit in a first-occurrence mask, or nil for a name the edge does not read
// as a parameter (a p.* property or anything else).
func (p *hitParams) field(k []byte) (dst *[]byte, bit uint32) {
	switch string(k) {
	case "cid":
		return &p.cid, 1 << 0
	case "site":
		return &p.site, 1 << 1
	case "cmp":
		return &p.cmp, 1 << 2
	case "ad":
		return &p.ad, 1 << 3
	case "cr":
		return &p.cr, 1 << 4
	case "pl":
		return &p.pl, 1 << 5
	case "uid":
		return &p.uid, 1 << 6
	case "url":
		return &p.url, 1 << 7
	case "ref":
		return &p.ref, 1 << 8
	case "k":
		return &p.kind, 1 << 9
	case "oid":
		return &p.oid, 1 << 10
	case "val":
		return &p.val, 1 << 11
	case "cur":
		return &p.cur, 1 << 12
	case "gdpr":
		return &p.gdpr, 1 << 13
	case "gdpr_consent":
		return &p.gdprConsent, 1 << 14
	case "kid":
		return &p.kid, 1 << 15
	case "exp":
		return &p.exp, 1 << 16
	case "sig":
		return &p.sig, 1 << 17
	}
	return nil, 0
}
