package visitor

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"testing"
)

var sinkKey uint64

func BenchmarkKeyCookieless(b *testing.B) {
	k := NewKeyer("secret")
	ip, ua, site := []byte{198, 51, 100, 7}, []byte("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"), []byte("news")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			sinkKey, _ = k.Key(1_764_331_200_000, site, nil, nil, ip, ua)
		}
	})
}

// BenchmarkKeyNaiveHMAC is the reference: a new HMAC per call, as the
// obvious code would do.
func BenchmarkKeyNaiveHMAC(b *testing.B) {
	k := NewKeyer("secret")
	salt := k.Salt(1_764_331_200_000)
	ip, ua, site := []byte{198, 51, 100, 7}, []byte("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"), []byte("news")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m := hmac.New(sha256.New, salt)
			m.Write(appendField(appendField(appendField(nil, site), ip), ua))
			sinkKey = binary.BigEndian.Uint64(m.Sum(nil))
		}
	})
}

// BenchmarkPartitionKeyCookieless is what the edge computes for every
// cookieless hit (the processor computes Key).
func BenchmarkPartitionKeyCookieless(b *testing.B) {
	k := NewKeyer("secret")
	ip, ua, site := []byte{198, 51, 100, 7}, []byte("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"), []byte("news")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			sinkKey = k.PartitionKey(1_764_331_200_000, site, nil, nil, ip, ua)
		}
	})
}

// BenchmarkKeyExplicit is the visitor key of a hit with a uid, which the
// processor computes anyway; BenchmarkRecipientKey what the recipient key
// of the same hit adds (make bench: the two side by side).
func BenchmarkKeyExplicit(b *testing.B) {
	k := NewKeyer("secret")
	site, uid := []byte("news"), []byte("subscriber-1234567")
	b.ReportAllocs()
	for b.Loop() {
		sinkKey, _ = k.Key(1_764_331_200_000, site, uid, nil, nil, nil)
	}
}

func BenchmarkRecipientKey(b *testing.B) {
	k := NewKeyer("secret")
	buf := make([]byte, 0, RecipientKeySize)
	b.ReportAllocs()
	for b.Loop() {
		buf = k.RecipientKey(buf[:0], "acme", "subscriber-1234567")
	}
}
