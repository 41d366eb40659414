package privacy

import "testing"

func TestRedactPII(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"none", "https://shop.example/p?id=7", "https://shop.example/p?id=7"},
		{"plain", "https://x.example/?e=jane.doe@mail.example&a=1", "https://x.example/?e=[redacted-email]&a=1"},
		{"percent", "https://x.example/?e=jane%40mail.example", "https://x.example/?e=[redacted-email]"},
		{"double", "https://x.example/?e=jane%2540mail.example&b=2", "https://x.example/?e=[redacted-email]&b=2"},
		{"in path", "https://x.example/u/bob+tag@corp.example.co.uk/inbox", "https://x.example/u/[redacted-email]/inbox"},
		{"encoded separator kept encoded", "https://x.example/?q=a%26b%20jane@x.example", "https://x.example/?q=a%26b%20[redacted-email]"},
		{"at without address", "https://x.example/@user", "https://x.example/@user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := RedactPII(tt.in)
			if got != tt.want {
				t.Fatalf("RedactPII(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
			if again := RedactPII(got); again != got {
				t.Fatalf("not idempotent: %q -> %q", got, again)
			}
		})
	}
}

func FuzzRedactPII(f *testing.F) {
	for _, s := range []string{
		"https://x.example/?e=jane%40mail.example", "a%2540b.cc", "%%40%4", "x@y.zz@w.vv",
		"a@b.c%6fm", "%25%34%30", "q=a%26b%20jane@x.example", "@@@..", "a@b.cc%2F%40d.ee",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 4096 {
			return
		}
		out := RedactPII(s)
		if HasEmail(out) {
			t.Fatalf("RedactPII(%q) = %q still holds an address after decoding: %q", s, out, DecodeAll(out))
		}
		if again := RedactPII(out); again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, out, again)
		}
	})
}
