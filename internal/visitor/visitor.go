// Package visitor derives the 64-bit visitor key that "unique" counts are made
// of (Key, which the processor calls), and the key raw hits are partitioned
// by (PartitionKey, which the edge calls), so a visitor's hits land on one
// partition and count as one visitor.
//
// In order of preference: an explicit id the page passes, the edge's visitor
// cookie, else a cookieless key: a keyed hash of IP, user agent and site with
// a salt that rotates every UTC day. The salt of a day is derived from the
// operator's secret and the date, so every node agrees on it without talking
// to the others, and a key cannot be linked to the next day's, except by
// the processor for a visit in progress at midnight: the previous day's salt
// is kept (PreviousDayKey), and a visitor whose session was open at
// midnight keeps the previous day's key for the new day (processor,
// linkMidnight), so the visit is neither two sessions nor two visitors.
//
// Keyer is safe for concurrent use and does not allocate per call.
package visitor

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

const dayMs = int64(24 * time.Hour / time.Millisecond)

// Keyer derives visitor keys from one secret.
type Keyer struct {
	secret []byte
	// partitionSeed seeds PartitionKey: derived from the secret, so the
	// same on every node.
	partitionSeed uint64
	stable        sync.Pool // *mac keyed by the secret (explicit ids and cookies)
	daily         sync.Pool // *mac keyed by a day's salt
}

type mac struct {
	day int64
	h   hash.Hash
	in  []byte // the hashed input, built here so hashing is one Write
	sum []byte
}

// NewKeyer returns a Keyer for secret. Every edge and processor of one
// deployment must use the same secret.
func NewKeyer(secret string) *Keyer {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("pixelpipe/partition-seed/v1"))
	return &Keyer{secret: []byte(secret), partitionSeed: binary.BigEndian.Uint64(m.Sum(nil))}
}

// Salt returns the cookieless salt of the UTC day that contains unixMs.
func (k *Keyer) Salt(unixMs int64) []byte {
	day := floorDiv(unixMs, dayMs)
	m := hmac.New(sha256.New, k.secret)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(day))
	m.Write([]byte("pixelpipe/visitor-salt/v1"))
	m.Write(b[:])
	return m.Sum(nil)
}

// Key returns the visitor key of a hit received at unixMs and how it was
// identified. The byte slices are only read.
func (k *Keyer) Key(unixMs int64, siteID, userID, cookieID, ip, userAgent []byte) (uint64, pixelpb.IdentitySource) {
	switch {
	case len(userID) > 0:
		return k.stableKey('u', siteID, userID), pixelpb.IdentitySource_IDENTITY_SOURCE_EXPLICIT
	case len(cookieID) > 0:
		return k.stableKey('c', nil, cookieID), pixelpb.IdentitySource_IDENTITY_SOURCE_COOKIE
	}
	day := floorDiv(unixMs, dayMs)
	m, _ := k.daily.Get().(*mac)
	if m == nil || m.day != day {
		m = &mac{day: day, h: hmac.New(sha256.New, k.Salt(unixMs)), sum: make([]byte, 0, sha256.Size)}
	}
	m.in = appendField(m.in[:0], siteID)
	m.in = appendField(m.in, ip)
	m.in = appendField(m.in, userAgent)
	m.sum = m.digest()
	key := binary.BigEndian.Uint64(m.sum)
	k.daily.Put(m)
	return key, pixelpb.IdentitySource_IDENTITY_SOURCE_COOKIELESS
}

// PartitionKey returns the Kafka key a raw hit is partitioned by: a
// deterministic 64-bit hash (xxHash64) of how the hit identifies its
// visitor, without the day: the explicit id and site, else the cookie, else
// site, IP and user agent. So every hit of one visitor, and the hits of a
// cookieless visit that spans midnight, whose visitor key changes with the
// salt, reach the one processor that holds that visitor's state (which
// links the two days' keys, see PreviousDayKey).
//
// It is not a secret and needs no cryptographic hash: the raw topic it
// keys holds the IP, user agent, cookie and id in the clear already, and
// events carry only Key. The hash is seeded from the secret only so that
// one deployment's partitioning is its own; every node with the same
// secret computes the same key, on any day and any version of Go
// (hash/maphash is not used: its seeds are per process). It costs tens of
// nanoseconds where the keyed SHA-256 of Key costs ≈0.4 µs, and the edge
// computes it for every hit. unixMs is not used (the key must not change
// with the day); it keeps the signature of Key.
func (k *Keyer) PartitionKey(unixMs int64, siteID, userID, cookieID, ip, userAgent []byte) uint64 {
	var d xxhash.Digest
	d.ResetWithSeed(k.partitionSeed)
	var tag [1]byte
	switch {
	case len(userID) > 0:
		tag[0] = 'u'
		_, _ = d.Write(tag[:])
		writeField(&d, siteID)
		writeField(&d, userID)
	case len(cookieID) > 0:
		tag[0] = 'c'
		_, _ = d.Write(tag[:])
		writeField(&d, cookieID)
	default:
		tag[0] = 'p'
		_, _ = d.Write(tag[:])
		writeField(&d, siteID)
		writeField(&d, ip)
		writeField(&d, userAgent)
	}
	return d.Sum64()
}

// writeField hashes b with its length first, as appendField does.
func writeField(d *xxhash.Digest, b []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	_, _ = d.Write(n[:])
	_, _ = d.Write(b)
}

// PreviousDayKey returns the cookieless key the same visitor had under the
// previous UTC day's salt, for a hit received at unixMs within window after
// midnight (the session timeout: a visit still open from before midnight
// must have had a hit that recently); otherwise 0. The processor uses it to
// keep a visit that spans midnight one visitor.
func (k *Keyer) PreviousDayKey(unixMs int64, window time.Duration, siteID, ip, userAgent []byte) uint64 {
	if unixMs-floorDiv(unixMs, dayMs)*dayMs > window.Milliseconds() {
		return 0
	}
	key, _ := k.Key(unixMs-dayMs, siteID, nil, nil, ip, userAgent)
	return key
}

// RecipientKeySize is the length of a recipient key.
const RecipientKeySize = 16

// RecipientKey appends to dst the recipient key of an explicit id (the uid
// a sender puts in its URLs) of tenant: the first RecipientKeySize bytes of
// the keyed SHA-256 that explicit visitor keys are made of, with its own
// tag and the tenant as scope. The same id under two tenants gets two
// unrelated keys, and no key gives its id back. It allocates nothing when
// dst has room.
func (k *Keyer) RecipientKey(dst []byte, tenant, id string) []byte {
	m := k.stableMAC('r', []byte(tenant), []byte(id))
	dst = append(dst, m.sum[:RecipientKeySize]...)
	k.stable.Put(m)
	return dst
}

func (k *Keyer) stableKey(tag byte, scope, id []byte) uint64 {
	m := k.stableMAC(tag, scope, id)
	key := binary.BigEndian.Uint64(m.sum)
	k.stable.Put(m)
	return key
}

// stableMAC hashes tag, scope and id under the secret into the sum of a
// pooled mac, which the caller puts back.
func (k *Keyer) stableMAC(tag byte, scope, id []byte) *mac {
	m, _ := k.stable.Get().(*mac)
	if m == nil {
		m = &mac{h: hmac.New(sha256.New, k.secret), sum: make([]byte, 0, sha256.Size)}
	}
	m.in = append(m.in[:0], tag)
	m.in = appendField(m.in, scope)
	m.in = appendField(m.in, id)
	m.sum = m.digest()
	return m
}

func (m *mac) digest() []byte {
	m.h.Reset()
	m.h.Write(m.in)
	return m.h.Sum(m.sum[:0])
}

// appendField appends b with its length first, so field boundaries cannot be
// shifted to make two different inputs hash alike.
func appendField(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// Domains of pseudonyms (AppendPseudonym): a uid and a cookie with the same
// text get different ones.
const (
	UIDPseudonym    = "pixelpipe/uid-pseudonym/v1\n"
	CookiePseudonym = "pixelpipe/cookie-pseudonym/v1\n"
)

// AppendPseudonym appends to dst "h:" and the hex of the first 16 bytes of
// HMAC-SHA256(secret, domain + id): what the edge records instead of a uid
// or cookie id when it pseudonymises. The same id always gives the same
// pseudonym, which says nothing of the id without the secret.
func AppendPseudonym(dst, secret []byte, domain string, id []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(domain))
	m.Write(id)
	dst = append(dst, "h:"...)
	return hex.AppendEncode(dst, m.Sum(nil)[:16])
}
