package signing

import "testing"

func TestRules(t *testing.T) {
	t.Parallel()
	r, err := Parse(" acme=require, acme:free-article=off ,globex:ad-7=prefer,*=prefer")
	if err != nil {
		t.Fatal(err)
	}
	for cid, want := range map[string]Policy{
		"acme:ad-1":         Require, // the tenant's rule
		"acme:free-article": Off,     // its own rule wins over the tenant's
		"globex:ad-7":       Prefer,
		"globex:ad-8":       Prefer, // the default
		"acme":              Require,
		"acmeco:x":          Prefer, // another tenant, not a prefix match
		"initech":           Prefer,
	} {
		if got := r.For(cid); got != want {
			t.Errorf("For(%q) = %v, want %v", cid, got, want)
		}
	}
	var none *Rules
	if none.For("acme:x") != Off {
		t.Error("nil rules are not off")
	}
	if empty, err := Parse(""); err != nil || empty.For("a:b") != Off {
		t.Errorf("empty rules: %v, %v", empty, err)
	}
	if def, _ := Parse("*=require"); def.For("a:b") != Require {
		t.Error("a default alone is not applied")
	}
	for _, bad := range []string{"acme", "acme=maybe", "=require", "acme=require,acme=off", "*=off,*=require", "*=prefer,*=prefer"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	for _, p := range []Policy{Off, Prefer, Require} {
		if q, err := ParsePolicy(p.String()); err != nil || q != p {
			t.Errorf("round trip of %v: %v, %v", p, q, err)
		}
	}
}
