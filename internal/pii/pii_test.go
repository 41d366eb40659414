package pii

import (
	"testing"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"none", "https://shop.example/p?id=7", "https://shop.example/p?id=7"},
		{"plain", "https://x.example/?e=jane.doe@mail.example&a=1", "https://x.example/?e=[redacted-email]&a=1"},
		{"percent", "https://x.example/?e=jane%40mail.example", "https://x.example/?e=[redacted-email]"},
		{"double", "https://x.example/?e=jane%2540mail.example&b=2", "https://x.example/?e=[redacted-email]&b=2"},
		{"escape formed by decoding", "https://x.example/?e=jane%%340mail.example", "https://x.example/?e=[redacted-email]"},
		{"in path", "https://x.example/u/bob+tag@corp.example.co.uk/inbox", "https://x.example/u/[redacted-email]/inbox"},
		{"encoded separator kept encoded", "https://x.example/?q=a%26b%20jane@x.example", "https://x.example/?q=a%26b%20[redacted-email]"},
		{"at without address", "https://x.example/@user", "https://x.example/@user"},

		{"phone E.164", "https://x.example/?tel=%2B14155552671&a=1", "https://x.example/?tel=[redacted-phone]&a=1"},
		{"phone plus literal", "https://x.example/?to=+14155552671", "https://x.example/?to=[redacted-phone]"},
		{"phone dashes", "https://x.example/?c=415-555-2671", "https://x.example/?c=[redacted-phone]"},
		{"phone parentheses and space", "https://x.example/?c=(415)%20555%202671", "https://x.example/?c=[redacted-phone]"},
		{"phone grouped by encoded spaces", "https://x.example/?c=%2B44%2020%207946%200958", "https://x.example/?c=[redacted-phone]"},
		{"phone grouped by plus", "https://x.example/?c=%2B44+20+7946+0958", "https://x.example/?c=[redacted-phone]"},
		{"phone national bare", "https://x.example/?c=0612345678", "https://x.example/?c=[redacted-phone]"},
		{"phone in path", "https://x.example/call/06-12-34-56-78/now", "https://x.example/call/[redacted-phone]/now"},
		{"phone named parameter, bare", "https://x.example/?phone=4155552671&cb=1732800000", "https://x.example/?phone=[redacted-phone]&cb=1732800000"},
		{"phone named MSISDN", "https://x.example/?MSISDN=447946095800", "https://x.example/?MSISDN=[redacted-phone]"},

		{"unix seconds kept", "https://x.example/?cb=1732800000", "https://x.example/?cb=1732800000"},
		{"unix millis kept", "https://x.example/?t=1732800000123", "https://x.example/?t=1732800000123"},
		{"order id kept", "https://x.example/order/98765432101", "https://x.example/order/98765432101"},
		{"UUID kept", "https://x.example/?id=123e4567-e89b-12d3-a456-426614174000", "https://x.example/?id=123e4567-e89b-12d3-a456-426614174000"},
		{"hex kept", "https://x.example/?h=a1234567890b", "https://x.example/?h=a1234567890b"},
		{"IP kept", "https://x.example/?ip=192.168.100.200", "https://x.example/?ip=192.168.100.200"},
		{"date kept", "https://x.example/?d=2026-11-28", "https://x.example/?d=2026-11-28"},
		{"long number kept", "https://x.example/?n=12345678901234567890", "https://x.example/?n=12345678901234567890"},
		{"user agent kept", "Mozilla/5.0 (Linux; Android 13; SM-S911B Build/TP1A.220624.014) Chrome/120.0.6099.224 Safari/537.36",
			"Mozilla/5.0 (Linux; Android 13; SM-S911B Build/TP1A.220624.014) Chrome/120.0.6099.224 Safari/537.36"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Redact(tt.in)
			if got != tt.want {
				t.Fatalf("Redact(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
			if again := Redact(got); again != got {
				t.Fatalf("not idempotent: %q -> %q", got, again)
			}
			if found := Find(nil, []byte(tt.in)) != 0; found != (got != tt.in) {
				t.Fatalf("Find(%q) = %v, but Redact changed it: %v", tt.in, found, got != tt.in)
			}
		})
	}
}

func TestRedactParam(t *testing.T) {
	t.Parallel()
	f := func(key, in, want string) {
		t.Helper()
		if got := RedactParam(key, in); got != want {
			t.Fatalf("RedactParam(%q, %q) = %q, want %q", key, in, got, want)
		}
		if found := Find([]byte(key), []byte(in)) != 0; found != (want != in) {
			t.Fatalf("Find(%q, %q) = %v", key, in, found)
		}
	}
	f("phone", "4155552671", RedactedPhone)
	f("Mobile_Number", "415.555.2671", RedactedPhone)
	f("order", "4155552671", "4155552671")
	f("tel", "1234", "1234")
	f("note", "call me on +33 6 12 34 56 78 or jane@x.example", "call%20me%20on%20"+RedactedPhone+"%20or%20"+RedactedEmail)
}

func FuzzRedactPII(f *testing.F) {
	for _, s := range []string{
		"https://x.example/?e=jane%40mail.example", "a%2540b.cc", "%%40%4", "x@y.zz@w.vv",
		"a@b.c%6fm", "%25%34%30", "q=a%26b%20jane@x.example", "@@@..", "a@b.cc%2F%40d.ee",
		"tel=%2B14155552671", "c=(415) 555-2671", "phone=4155552671&x=0612345678", "+44+20+7946+0958",
		"a1234567890b", "x=0%36%31%32345678%39", "1-2-3-4-5-6-7-8-9", "jane%%340mail.example", "j%4%30x.example",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 4096 {
			return
		}
		out := RedactPII(s)
		if HasEmail(out) || HasPhone(out) {
			t.Fatalf("RedactPII(%q) = %q still holds personal data after decoding: %q", s, out, DecodeAll(out))
		}
		if again := RedactPII(out); again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, out, again)
		}
		if (Find(nil, []byte(s)) != 0) != (out != s) {
			t.Fatalf("Find(%q) disagrees with RedactPII: %q", s, out)
		}
	})
}

func BenchmarkFind(b *testing.B) {
	for _, bc := range []struct{ name, s string }{
		{"clean", "https://news.example/2026/11/28/a-story-about-things?utm_source=newsletter&utm_medium=email"},
		{"escaped and digits", "https://news.example/a%20b?q=%E2%82%AC&cb=1732800000123&id=98765432101"},
		{"email", "https://news.example/?e=jane.doe%40mail.example&x=1"},
	} {
		s := []byte(bc.s)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				Find(nil, s)
			}
		})
	}
}
