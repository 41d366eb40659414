package source

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	l := DefaultList()
	if err := l.Load(strings.NewReader("# ours\nnews.partner.example social\n")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, page, ref string
		want            Source
	}{
		{"direct", "https://shop.example/", "", Source{Medium: Direct}},
		{"google uk", "https://shop.example/", "https://www.google.co.uk/", Source{ReferrerDomain: "google.co.uk", Medium: Search}},
		{"gmail web is email not search", "https://shop.example/", "https://mail.google.com/mail/u/0/", Source{ReferrerDomain: "google.com", Medium: Email}},
		{"t.co", "https://shop.example/a", "https://t.co/xyz", Source{ReferrerDomain: "t.co", Medium: Social}},
		{"internal", "https://shop.example/b", "https://blog.shop.example/post", Source{ReferrerDomain: "shop.example", Medium: Internal}},
		{"unknown", "https://shop.example/b", "https://someblog.example.org/x", Source{ReferrerDomain: "example.org", Medium: Other}},
		{"extended list", "https://shop.example/b", "https://news.partner.example/x", Source{ReferrerDomain: "partner.example", Medium: Social}},
		{"utm and gclid", "https://shop.example/?utm_source=google&utm_medium=cpc&utm_campaign=bf&utm_term=shoes&utm_content=a&gclid=Cj0K", "https://www.google.com/",
			Source{ReferrerDomain: "google.com", Medium: Paid, UTMSource: "google", UTMMedium: "cpc", UTMCampaign: "bf", UTMTerm: "shoes", UTMContent: "a", ClickID: "Cj0K", ClickNetwork: "google"}},
		{"msclkid", "https://shop.example/?msclkid=abc", "", Source{Medium: Paid, ClickID: "abc", ClickNetwork: "microsoft"}},
		{"fbclid", "https://shop.example/?fbclid=IwAR", "https://l.facebook.com/", Source{ReferrerDomain: "facebook.com", Medium: Paid, ClickID: "IwAR", ClickNetwork: "meta"}},
		{"dclid", "https://shop.example/?dclid=d1", "", Source{Medium: Paid, ClickID: "d1", ClickNetwork: "doubleclick"}},
		{"newsletter", "https://shop.example/?utm_source=nl&utm_medium=email", "", Source{Medium: Email, UTMSource: "nl", UTMMedium: "email"}},
		{"garbage", "%%%", "::::", Source{Medium: Direct}},
		{"port, case, user info", "https://Shop.Example:8443/x", "https://u:p@WWW.Google.COM:443/?q=1", Source{ReferrerDomain: "google.com", Medium: Search}},
		{"ipv6 referrer", "https://shop.example/", "http://[2001:db8::1]:8080/", Source{ReferrerDomain: "2001:db8::1", Medium: Other}},
		{"escaped and repeated utm, fragment", "https://shop.example/?utm_source=a%20b&utm_source=c&utm_campaign=x+y#utm_term=no", "",
			Source{Medium: Other, UTMSource: "a b", UTMCampaign: "x y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, l.Classify(tt.page, tt.ref)); diff != "" {
				t.Fatalf("Classify(%q, %q) (-want +got):\n%s", tt.page, tt.ref, diff)
			}
		})
	}
	if err := l.Add("x.example", "nonsense"); err == nil {
		t.Fatal("unknown medium accepted")
	}
}
