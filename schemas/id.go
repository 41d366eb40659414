package schemas

import "strings"

// MaxIDLen bounds every id of a hit (content, site, campaign, cookie, ad,
// creative, placement, order, property key) in bytes.
const MaxIDLen = 128

// ValidID reports whether id holds at most MaxIDLen bytes, each one of
// A-Z a-z 0-9 . _ : - (the empty id is valid: callers that need one check
// that apart). Ids go into Redis keys and fields as they are, so nothing
// else may pass: no separators of the key layout, no hash-tag braces.
func ValidID[T ~string | ~[]byte](id T) bool {
	if len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !idBytes[id[i]] {
			return false
		}
	}
	return true
}

// idBytes marks the bytes ids may hold (one load per byte: the edge checks
// seven ids of every hit).
var idBytes = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == ':' || c == '-'
	}
	return t
}()

// Tenant returns the tenant of a content id: the part before its first
// ':' ("" when it has none). Recipient keys are scoped to it.
func Tenant(contentID string) string {
	t, _, ok := strings.Cut(contentID, ":")
	if !ok {
		return ""
	}
	return t
}
