// Package signing holds the signed-pixel policy: per tenant or content id,
// whether hits that are not verified signed pixels count as people.
//
// Under Require, a hit of the content id that did not verify (unsigned,
// forged, altered, expired) is counted in its own class, unverified, never
// as human. Under Prefer it is counted as human and its reason is tallied
// apart, so reports show how much of the human traffic was signed. Off
// (the default) ignores signatures.
package signing

import (
	"fmt"
	"strings"
)

// Policy is what a content id's unverified hits count as.
type Policy uint8

// Policies.
const (
	Off Policy = iota
	Prefer
	Require
)

// String returns the policy's name: "off", "prefer" or "require".
func (p Policy) String() string {
	switch p {
	case Prefer:
		return "prefer"
	case Require:
		return "require"
	}
	return "off"
}

// ParsePolicy is the inverse of Policy.String.
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "off":
		return Off, nil
	case "prefer":
		return Prefer, nil
	case "require":
		return Require, nil
	}
	return Off, fmt.Errorf("unknown signed-pixel policy %q: use require, prefer or off", s)
}

// Rules map tenants and content ids to policies. The zero value (and nil)
// is Off for every content id.
type Rules struct {
	byKey  map[string]Policy
	def    Policy
	defSet bool
}

// Parse reads rules "KEY=POLICY,KEY=POLICY,...". A KEY is a content id, a
// tenant (the part of content ids before the first ':'), or "*" for every
// content id no other key names. A content id's own key wins over its
// tenant's, which wins over "*". Empty text is no rule.
func Parse(text string) (*Rules, error) {
	r := &Rules{byKey: map[string]Policy{}}
	for entry := range strings.SplitSeq(text, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		key, name, ok := strings.Cut(entry, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("signed-pixel rule %q: want KEY=POLICY", entry)
		}
		p, err := ParsePolicy(name)
		if err != nil {
			return nil, fmt.Errorf("signed-pixel rule %q: %w", entry, err)
		}
		if _, dup := r.byKey[key]; dup || key == "*" && r.defSet {
			return nil, fmt.Errorf("signed-pixel rule %q: %s is named twice", entry, key)
		}
		if key == "*" {
			r.def, r.defSet = p, true
			continue
		}
		r.byKey[key] = p
	}
	return r, nil
}

// For returns the policy of contentID.
func (r *Rules) For(contentID string) Policy {
	if r == nil {
		return Off
	}
	if len(r.byKey) == 0 {
		return r.def
	}
	if p, ok := r.byKey[contentID]; ok {
		return p
	}
	if i := strings.IndexByte(contentID, ':'); i > 0 {
		if p, ok := r.byKey[contentID[:i]]; ok {
			return p
		}
	}
	return r.def
}
