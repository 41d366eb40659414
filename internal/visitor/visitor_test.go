package visitor

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

const day = int64(86_400_000)

func TestKeyPreferenceAndStability(t *testing.T) {
	t.Parallel()
	k := NewKeyer("s3cret")
	t0 := int64(1_764_288_000_000) // a UTC midnight
	ip, ua, site := []byte{198, 51, 100, 7}, []byte("UA"), []byte("site")

	u1, src := k.Key(t0, site, []byte("user"), []byte("cookie"), ip, ua)
	if src != pixelpb.IdentitySource_IDENTITY_SOURCE_EXPLICIT {
		t.Fatalf("explicit id not preferred: %v", src)
	}
	u2, _ := k.Key(t0+5*day, site, []byte("user"), nil, []byte{1, 2, 3, 4}, []byte("other"))
	if u1 != u2 {
		t.Fatal("explicit-id key changes with day, IP or user agent")
	}
	c1, src := k.Key(t0, site, nil, []byte("cookie"), ip, ua)
	if src != pixelpb.IdentitySource_IDENTITY_SOURCE_COOKIE || c1 == u1 {
		t.Fatalf("cookie: %v %x", src, c1)
	}
	a, src := k.Key(t0+1, site, nil, nil, ip, ua)
	b, _ := k.Key(t0+day-1, site, nil, nil, ip, ua)
	if src != pixelpb.IdentitySource_IDENTITY_SOURCE_COOKIELESS || a != b {
		t.Fatalf("cookieless key not stable within a day: %x %x", a, b)
	}
	c, _ := k.Key(t0+day, site, nil, nil, ip, ua)
	if c == a {
		t.Fatal("cookieless key did not rotate at midnight")
	}
	d, _ := k.Key(t0+1, site, nil, nil, []byte{198, 51, 100, 8}, ua)
	if d == a {
		t.Fatal("different IPs give the same key")
	}
	other, _ := NewKeyer("other").Key(t0+1, site, nil, nil, ip, ua)
	if other == a {
		t.Fatal("key does not depend on the secret")
	}
}

func TestFieldBoundaries(t *testing.T) {
	t.Parallel()
	k := NewKeyer("s")
	a, _ := k.Key(0, []byte("ab"), nil, nil, []byte("c"), nil)
	b, _ := k.Key(0, []byte("a"), nil, nil, []byte("bc"), nil)
	if a == b {
		t.Fatal("shifting bytes between fields gives the same key")
	}
}

// TestMidnight uses hit times as the clock: the cookieless key rotates at
// UTC midnight, the partition key does not, and PreviousDayKey gives the
// key of the day before only within the window after midnight.
func TestMidnight(t *testing.T) {
	t.Parallel()
	k := NewKeyer("s3cret")
	midnight := int64(1_764_374_400_000) // 2025-11-29T00:00:00Z
	ip, ua, site := []byte{198, 51, 100, 7}, []byte("UA"), []byte("site")
	before, after := midnight-10*60_000, midnight+10*60_000
	kb, _ := k.Key(before, site, nil, nil, ip, ua)
	ka, _ := k.Key(after, site, nil, nil, ip, ua)
	if kb == ka {
		t.Fatal("cookieless key did not rotate at midnight")
	}
	if k.PartitionKey(before, site, nil, nil, ip, ua) != k.PartitionKey(after, site, nil, nil, ip, ua) {
		t.Fatal("partition key of a cookieless visitor changes at midnight")
	}
	if k.PartitionKey(before, site, nil, nil, ip, ua) == k.PartitionKey(before, site, nil, nil, []byte{1, 2, 3, 4}, ua) {
		t.Fatal("partition key ignores the IP")
	}
	if k.PartitionKey(before, site, []byte("u"), nil, ip, ua) != k.PartitionKey(before+5*day, site, []byte("u"), []byte("c"), []byte{1, 2, 3, 4}, []byte("other")) {
		t.Fatal("partition key of an explicit id changes with day, cookie, IP or user agent")
	}
	if k.PartitionKey(before, site, nil, []byte("c"), ip, ua) != k.PartitionKey(before+5*day, nil, nil, []byte("c"), []byte{1, 2, 3, 4}, []byte("other")) {
		t.Fatal("partition key of a cookie changes with day, site, IP or user agent")
	}
	if k.PartitionKey(before, site, nil, nil, ip, ua) == NewKeyer("other").PartitionKey(before, site, nil, nil, ip, ua) {
		t.Fatal("partition key does not depend on the secret")
	}
	if got := k.PreviousDayKey(after, 30*time.Minute, site, ip, ua); got != kb {
		t.Fatalf("PreviousDayKey 10 min after midnight = %x, want yesterday's %x", got, kb)
	}
	if got := k.PreviousDayKey(midnight+31*60_000, 30*time.Minute, site, ip, ua); got != 0 {
		t.Fatalf("PreviousDayKey 31 min after midnight = %x, want 0", got)
	}
}

// TestPartitionKeyGolden pins PartitionKey's values: every edge of a
// deployment must compute the same key for a visitor, whatever its version,
// or a visitor's hits would be split across processors during a rollout.
// Change these only with a note in README (Decisions).
func TestPartitionKeyGolden(t *testing.T) {
	t.Parallel()
	k := NewKeyer("s3cret")
	ip, ua, site := []byte{198, 51, 100, 7}, []byte("UA"), []byte("site")
	for _, c := range []struct {
		name        string
		uid, cookie []byte
		want        uint64
	}{
		{"cookieless", nil, nil, 0xd3b7492db7adef0e},
		{"cookie", nil, []byte("c-9"), 0x55e5ad3bd59a6576},
		{"explicit", []byte("u1"), []byte("c-9"), 0x59fa6c83d242aa03},
	} {
		if got := k.PartitionKey(0, site, c.uid, c.cookie, ip, ua); got != c.want {
			t.Errorf("%s: PartitionKey = %#x, want %#x", c.name, got, c.want)
		}
	}
}

// TestRecipientKey: a recipient key is the first 16 bytes of HMAC-SHA256
// under the secret of 'r', the tenant and the id (each with its length);
// tenants, ids and secrets separate keys, the tenant/id boundary cannot be
// shifted, and it is unrelated to the id's visitor key.
func TestRecipientKey(t *testing.T) {
	k := NewKeyer("s")
	mac := hmac.New(sha256.New, []byte("s"))
	mac.Write(appendField(appendField([]byte{'r'}, []byte("acme")), []byte("subscriber-42")))
	want := mac.Sum(nil)[:RecipientKeySize]
	got := k.RecipientKey(nil, "acme", "subscriber-42")
	if !bytes.Equal(got, want) {
		t.Fatalf("key %x, want %x", got, want)
	}
	for _, other := range [][]byte{
		k.RecipientKey(nil, "globex", "subscriber-42"),
		k.RecipientKey(nil, "acme", "subscriber-43"),
		k.RecipientKey(nil, "acmes", "ubscriber-42"),
		NewKeyer("t").RecipientKey(nil, "acme", "subscriber-42"),
	} {
		if bytes.Equal(other, want) {
			t.Fatalf("another tenant, id or secret gives the same key %x", other)
		}
	}
	if vk, _ := k.Key(0, []byte("acme"), []byte("subscriber-42"), nil, nil, nil); vk == binary.BigEndian.Uint64(want) {
		t.Fatal("the recipient key repeats the visitor key")
	}
}
