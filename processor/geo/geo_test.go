package geo

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pixelpipe/pixelpipe/internal/pipetest"
)

// writeDB writes a MaxMind-format database of dbType holding recs (CIDR to
// record) to path, through a temporary file and a rename, as an updater does.
func writeDB(t testing.TB, path, dbType string, recs map[string]mmdbtype.Map) {
	t.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: dbType, Description: map[string]string{"en": "pixelpipe test"}, Languages: []string{"en"}, RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, rec := range recs {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Insert(n, rec); err != nil {
			t.Fatal(err)
		}
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func cityRec(country, sub, city string) mmdbtype.Map {
	return mmdbtype.Map{
		"country":      mmdbtype.Map{"iso_code": mmdbtype.String(country)},
		"subdivisions": mmdbtype.Slice{mmdbtype.Map{"iso_code": mmdbtype.String(sub)}},
		"city":         mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(city)}},
	}
}

func TestLookupAndReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	city, asn := filepath.Join(dir, "city.mmdb"), filepath.Join(dir, "asn.mmdb")
	writeDB(t, city, "GeoIP2-City", map[string]mmdbtype.Map{
		"203.0.113.0/24": cityRec("NL", "NH", "Amsterdam"),
		"2001:db8::/32":  cityRec("DE", "BE", "Berlin"),
	})
	writeDB(t, asn, "GeoLite2-ASN", map[string]mmdbtype.Map{"203.0.113.0/24": {"autonomous_system_number": mmdbtype.Uint32(64500)}})

	l, err := New(Config{CityDB: city, ASNDB: asn, ReloadInterval: 20 * time.Millisecond}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	check := func(ip string, want Geo) string {
		if got := l.Lookup(netip.MustParseAddr(ip)); got != want {
			return ip + ": got " + got.Country + "/" + got.Region + "/" + got.City + ", want " + want.Country + "/" + want.Region + "/" + want.City
		}
		return ""
	}
	for ip, want := range map[string]Geo{
		"203.0.113.9":        {Country: "NL", Region: "NL-NH", City: "Amsterdam", ASN: 64500},
		"::ffff:203.0.113.9": {Country: "NL", Region: "NL-NH", City: "Amsterdam", ASN: 64500},
		"2001:db8::1":        {Country: "DE", Region: "DE-BE", City: "Berlin"},
		"198.51.100.1":       {},
	} {
		if msg := check(ip, want); msg != "" {
			t.Fatal(msg)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// The file changes under the running locator: lookups follow.
	writeDB(t, city, "GeoIP2-City", map[string]mmdbtype.Map{"203.0.113.0/24": cityRec("BE", "VLG", "Gent")})
	pipetest.Eventually(t, 5*time.Second, func() string {
		return check("203.0.113.9", Geo{Country: "BE", Region: "BE-VLG", City: "Gent", ASN: 64500})
	})
	// A broken file keeps the previous database.
	if err := os.WriteFile(city+".tmp", []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(city+".tmp", city); err != nil {
		t.Fatal(err)
	}
	pipetest.Eventually(t, 5*time.Second, func() string {
		if v := errorsCount(t, l); v < 1 {
			return "broken database not noticed yet"
		}
		return check("203.0.113.9", Geo{Country: "BE", Region: "BE-VLG", City: "Gent", ASN: 64500})
	})
}

func errorsCount(t testing.TB, l *Locator) float64 {
	t.Helper()
	c, err := l.reloads.GetMetricWithLabelValues("city", "error")
	if err != nil {
		t.Fatal(err)
	}
	return testutil.ToFloat64(c)
}

func TestBuiltinCountry(t *testing.T) {
	t.Parallel()
	l, err := New(Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 1.1.1.1 is Cloudflare's (AU in the IP2Location LITE data of this
	// version); 8.8.8.8 is Google's (US). Private and reserved addresses
	// stay unknown.
	for ip, want := range map[string]string{"8.8.8.8": "US", "10.1.2.3": "", "192.168.1.1": ""} {
		if got := l.Lookup(netip.MustParseAddr(ip)).Country; got != want {
			t.Errorf("%s: country %q, want %q", ip, got, want)
		}
	}
	if got := l.Lookup(netip.MustParseAddr("2a00:1450:4001:80b::200e")).Country; got == "" {
		t.Errorf("IPv6 of Google: no country from the built-in table")
	}
	off, _ := New(Config{NoDefault: true}, nil, nil)
	if got := off.Lookup(netip.MustParseAddr("8.8.8.8")).Country; got != "" {
		t.Errorf("NoDefault: country %q", got)
	}
}

func TestMissingDatabaseIsAnError(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{CityDB: filepath.Join(t.TempDir(), "nope.mmdb")}, nil, nil); err == nil {
		t.Fatal("no error for a missing database")
	}
}
