// Package geo maps a client IP to country, region, city and autonomous
// system, from MaxMind-format databases (GeoLite2, GeoIP2, DB-IP lite, ...)
// named in config and reloaded when their files change. Without a city or
// country database it falls back to the country table that ships inside the
// binary (github.com/phuslu/iploc: IP2Location LITE data, CC BY-SA 4.0, which
// asks for the credit line "This site or product includes IP2Location LITE
// data available from https://lite.ip2location.com").
//
// Lookups are safe for concurrent use and never block on a reload: a
// reload reads the whole file into memory (no mmap, so a reader still in use
// is never unmapped) and swaps a pointer.
package geo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/phuslu/iploc"
	"github.com/prometheus/client_golang/prometheus"
)

// Config names the databases.
type Config struct {
	// CityDB is a MaxMind-format City or Country database file; empty uses
	// the built-in country table.
	CityDB string
	// ASNDB is a MaxMind-format ASN database file; empty leaves asn 0.
	ASNDB string
	// ReloadInterval is how often the files are checked for changes
	// (modification time and size). Default 1 min.
	ReloadInterval time.Duration
	// NoDefault turns the built-in country table off.
	NoDefault bool
}

// Geo is what a lookup found; empty fields are unknown.
type Geo struct {
	Country, Region, City string
	ASN                   uint32
}

// Locator looks IPs up.
type Locator struct {
	cfg     Config
	logger  *slog.Logger
	city    atomic.Pointer[db]
	asn     atomic.Pointer[db]
	reloads *prometheus.CounterVec
}

type db struct {
	r       *maxminddb.Reader
	modTime time.Time
	size    int64
}

// New opens the configured databases; a database that is named but cannot
// be read is an error.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Locator, error) {
	if cfg.ReloadInterval <= 0 {
		cfg.ReloadInterval = time.Minute
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Locator{cfg: cfg, logger: logger, reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pixel_processor_geo_reloads_total",
		Help: "Geo database (re)loads by database (city, asn) and result (ok, error); an error keeps the previous database.",
	}, []string{"db", "result"})}
	if reg != nil {
		reg.MustRegister(l.reloads)
	}
	var errs []error
	for _, d := range l.dbs() {
		if d.path == "" {
			continue
		}
		if _, err := l.load(d.name, d.path, d.ptr); err != nil {
			errs = append(errs, err)
		}
	}
	return l, errors.Join(errs...)
}

type namedDB struct {
	name, path string
	ptr        *atomic.Pointer[db]
}

func (l *Locator) dbs() []namedDB {
	return []namedDB{{"city", l.cfg.CityDB, &l.city}, {"asn", l.cfg.ASNDB, &l.asn}}
}

// load reads path when it differs from the loaded version.
func (l *Locator) load(name, path string, ptr *atomic.Pointer[db]) (bool, error) {
	st, err := os.Stat(path)
	if err == nil {
		if cur := ptr.Load(); cur != nil && cur.modTime.Equal(st.ModTime()) && cur.size == st.Size() {
			return false, nil
		}
		var b []byte
		if b, err = os.ReadFile(path); err == nil {
			var r *maxminddb.Reader
			if r, err = maxminddb.OpenBytes(b); err == nil {
				if err = r.Verify(); err == nil {
					ptr.Store(&db{r: r, modTime: st.ModTime(), size: st.Size()})
					l.reloads.WithLabelValues(name, "ok").Inc()
					return true, nil
				}
			}
		}
	}
	l.reloads.WithLabelValues(name, "error").Inc()
	return false, fmt.Errorf("load %s database %s: %w", name, path, err)
}

// Run checks the files every ReloadInterval until ctx ends.
func (l *Locator) Run(ctx context.Context) error {
	if l.cfg.CityDB == "" && l.cfg.ASNDB == "" {
		return nil
	}
	t := time.NewTicker(l.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for _, d := range l.dbs() {
			if d.path == "" {
				continue
			}
			changed, err := l.load(d.name, d.path, d.ptr)
			if err != nil {
				l.logger.Warn("geo database not reloaded; keeping the previous one", "err", err)
			} else if changed {
				l.logger.Info("geo database reloaded", "db", d.name, "path", d.path)
			}
		}
	}
}

type cityRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Subdivisions []struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"subdivisions"`
	City struct {
		Names struct {
			En string `maxminddb:"en"`
		} `maxminddb:"names"`
	} `maxminddb:"city"`
}

type asnRecord struct {
	ASN uint32 `maxminddb:"autonomous_system_number"`
}

// Lookup returns what the databases know of ip.
func (l *Locator) Lookup(ip netip.Addr) Geo {
	var g Geo
	if !ip.IsValid() {
		return g
	}
	ip = ip.Unmap()
	if d := l.city.Load(); d != nil {
		var rec cityRecord
		if err := d.r.Lookup(ip).Decode(&rec); err == nil {
			g.Country, g.City = rec.Country.ISOCode, rec.City.Names.En
			if len(rec.Subdivisions) > 0 && rec.Subdivisions[0].ISOCode != "" && g.Country != "" {
				g.Region = g.Country + "-" + rec.Subdivisions[0].ISOCode
			}
		}
	} else if !l.cfg.NoDefault && l.cfg.CityDB == "" && ip.IsGlobalUnicast() && !ip.IsPrivate() {
		if c := iploc.IPCountry(ip); c != "ZZ" {
			g.Country = c
		}
	}
	if d := l.asn.Load(); d != nil {
		var rec asnRecord
		if err := d.r.Lookup(ip).Decode(&rec); err == nil {
			g.ASN = rec.ASN
		}
	}
	return g
}
