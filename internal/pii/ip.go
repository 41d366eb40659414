package pii

// TruncateIP keeps the network part of an address: /24 of IPv4, /48 of IPv6.
// Anything else gives nil.
func TruncateIP(ip []byte) []byte { return AppendTruncatedIP(nil, ip, 24, 48) }

// AppendTruncatedIP appends to dst the first v4 bits of an IPv4 address or
// v6 bits of an IPv6 one (4 or 16 bytes), the rest zero; anything else
// gives nil. The processor cuts the address in events this way, and the
// edge in raw hits when it pseudonymises.
func AppendTruncatedIP(dst, ip []byte, v4, v6 int) []byte {
	bits := v4
	switch len(ip) {
	case 4:
	case 16:
		bits = v6
	default:
		return nil
	}
	full := bits / 8
	dst = append(dst, ip[:full]...)
	if rem := bits % 8; rem != 0 {
		dst = append(dst, ip[full]&byte(0xff<<(8-rem)))
		full++
	}
	for range len(ip) - full {
		dst = append(dst, 0)
	}
	return dst
}
