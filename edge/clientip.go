package edge

import (
	"bytes"
	"net"
	"net/netip"
	"unsafe"
)

// clientAddr returns the client's address: the TCP peer, unless the peer is
// a trusted proxy; then the rightmost X-Forwarded-For hop that is not a
// trusted proxy (hops are walked from the right, across all XFF headers in
// order). Left of that hop the header is written by whoever the client is,
// so it is never read. A hop that does not parse ends the walk, and the
// last trusted address seen is returned; if every hop is trusted, the
// leftmost one is. It does not allocate.
func clientAddr(peer netip.Addr, xff [][]byte, trusted []netip.Prefix) netip.Addr {
	peer = peer.Unmap()
	if !isTrusted(peer, trusted) {
		return peer
	}
	last := peer
	for i := len(xff) - 1; i >= 0; i-- {
		h := xff[i]
		for len(h) > 0 {
			hop := h
			if j := bytes.LastIndexByte(h, ','); j >= 0 {
				hop, h = h[j+1:], h[:j]
			} else {
				h = nil
			}
			hop = bytes.TrimSpace(hop)
			a, err := netip.ParseAddr(b2s(hop))
			if err != nil {
				return last
			}
			a = a.Unmap()
			if !isTrusted(a, trusted) {
				return a
			}
			last = a
		}
	}
	return last
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// b2s views b as a string without copying. The string must not outlive b
// or be kept: netip.ParseAddr only reads it.
func b2s(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// peerAddr converts fasthttp's remote IP without allocating.
func peerAddr(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// appendIP appends the 4-byte form of IPv4 addresses and the 16-byte form
// of the rest.
func appendIP(dst []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return dst
	}
	if a.Is4() {
		b := a.As4()
		return append(dst, b[:]...)
	}
	b := a.As16()
	return append(dst, b[:]...)
}
