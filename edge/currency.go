package edge

import "strings"

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
