package edge

import (
	"strings"

	"github.com/pixelpipe/pixelpipe/schemas"
)

// iso4217 lists the active ISO 4217 currency codes (funds, precious metals
// and special drawing rights included; XTS, the testing code, and XXX, "no
// currency", left out), as of 2025: XCG and ZWG are in, and the currencies
// they replace (ANG, ZWL) stay accepted while they are still in use.
const iso4217 = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV " +
	"BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE " +
	"CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD " +
	"HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD " +
	"KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV " +
	"MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB " +
	"RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT " +
	"TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF " +
	"XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XUA YER ZAR ZMW ZWG ZWL"

// currencies is iso4217 as a table indexed by currencyIndex.
var currencies = func() (t [26 * 26 * 26]bool) {
	for _, c := range strings.Fields(iso4217) {
		i, _ := currencyIndex([]byte(c))
		t[i] = true
	}
	return t
}()

// currencyIndex maps three upper-case letters to 0..26³-1.
func currencyIndex(b []byte) (int, bool) {
	if len(b) != 3 {
		return 0, false
	}
	i := 0
	for _, c := range b {
		if c < 'A' || c > 'Z' {
			return 0, false
		}
		i = i*26 + int(c-'A')
	}
	return i, true
}

// knownCurrency reports whether b is an active ISO 4217 code.
func knownCurrency(b []byte) bool {
	i, ok := currencyIndex(b)
	return ok && currencies[i]
}

// maxValueDigits bounds a conversion value's integer digits: 10^12
// currency units or more is not a purchase (and stays far inside int64
// millionths; sums are 128-bit, see internal/money).
const maxValueDigits = 12

// conversionValue parses a conversion's value, a decimal such as 12, 12.5
// or 0.000001, into millionths; empty is 0. It returns why the value is
// invalid, or "": a malformed number (more than 6 decimals, an exponent,
// NaN, a comma), 10^12 units or more, or a negative value.
func conversionValue(b []byte) (int64, schemas.InvalidReason) {
	if len(b) == 0 {
		return 0, ""
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	var v int64
	digits, frac, dot, any := 0, 0, false, false
	for _, c := range b {
		switch {
		case c == '.' && !dot:
			dot = true
		case c >= '0' && c <= '9':
			any = true
			if dot {
				if frac++; frac > 6 {
					return 0, schemas.InvalidBadValue
				}
			} else if v > 0 || c != '0' {
				if digits++; digits > maxValueDigits {
					continue // too large; the rest must still be a number
				}
			}
			v = v*10 + int64(c-'0')
		default:
			return 0, schemas.InvalidBadValue
		}
	}
	switch {
	case !any:
		return 0, schemas.InvalidBadValue
	case digits > maxValueDigits:
		return 0, schemas.InvalidValueTooLarge
	}
	for ; frac < 6; frac++ {
		v *= 10
	}
	if neg && v != 0 {
		return 0, schemas.InvalidNegativeValue
	}
	return v, ""
}

// conversion checks a conversion's order id, value and currency; it returns
// the value in millionths and why the conversion is invalid, or "".
func conversion(oid, val, cur []byte) (int64, schemas.InvalidReason) {
	if !validID(oid) {
		return 0, schemas.InvalidBadOrderID
	}
	micros, reason := conversionValue(val)
	switch {
	case reason != "":
		return 0, reason
	case len(cur) > 0 && !knownCurrency(cur):
		return 0, schemas.InvalidUnknownCurrency
	case micros != 0 && len(cur) == 0:
		return 0, schemas.InvalidValueNoCurrency
	}
	return micros, ""
}
