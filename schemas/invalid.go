package schemas

// Invalid reasons: why a raw hit cannot become an event. The edge writes
// them into RawHit.invalid_reason (HitFields.InvalidReason) and still
// publishes the hit; the processor checks the rest (Validate in the
// processor) and writes every invalid hit to the dead-letter topic with the
// header reason "invalid: <reason>". Nothing invalid is counted.
const (
	InvalidMissingCID   = "missing_cid"     // no content id
	InvalidBadCID       = "bad_cid"         // a content id outside the id byte class or too long
	InvalidBadKind      = "bad_kind"        // an unknown event kind
	InvalidBadID        = "bad_id"          // a site, campaign, cookie, ad, creative, placement or user id that is malformed
	InvalidBadClick     = "bad_click"       // a click whose destination was neither signed nor allowed
	InvalidBadProps     = "bad_props"       // too many custom properties, or a malformed key
	InvalidTooManyParam = "too_many_params" // more query parameters than the edge accepts
	InvalidBadOrigin    = "bad_origin"      // no event id or receive time (never from the edge)

	// Conversions: an order id, a value in at most 6 decimals and an
	// ISO 4217 currency, each checked; nothing is clamped or dropped
	// silently.
	InvalidBadOrderID      = "bad_order_id"           // outside the id byte class or too long
	InvalidBadValue        = "bad_value"              // not a decimal number with at most 6 digits after the point (NaN, exponents, "1,5")
	InvalidValueTooLarge   = "value_too_large"        // 10^12 currency units or more
	InvalidNegativeValue   = "negative_value"         // below zero: refunds are not conversions
	InvalidUnknownCurrency = "unknown_currency"       // not an active ISO 4217 code
	InvalidValueNoCurrency = "value_without_currency" // a value other than 0 without a currency: it could not be summed
)

// Why a pixel is not verified (RawHit.signature_error, and with Unsigned
// Event.unverified_reason). A hit that is not verified is still valid: the
// content id's signing policy decides how it counts.
const (
	Unsigned              = "unsigned"        // no signature (Event.unverified_reason only)
	SignatureUnknownKey   = "unknown_key"     // kid names no key of the edge
	SignatureBad          = "bad_signature"   // the HMAC does not match: forged, or a signed parameter altered
	SignatureExpired      = "expired"         // exp has passed
	SignatureUnsignedTail = "unsigned_suffix" // parameters other than cb after sig
)

// Dead-letter reasons: the "reason" header of a pixel.dlq.v1 record is
// "<kind>: <detail>", kind one of these.
const (
	DeadLetterDecode  = "decode"  // the bytes are no raw hit; detail: the decoder's error
	DeadLetterInvalid = "invalid" // an invalid hit; detail: an Invalid* code
	DeadLetterLate    = "late"    // an event older than the aggregator's late horizon
)

// DeadLetterReason returns the "reason" header of a dead letter.
func DeadLetterReason(kind, detail string) string { return kind + ": " + detail }

// Label reasons: why an event is labelled bot (Event.bot_reasons), and why
// an open is a machine's (those set machine_open too).
const (
	BotKnownCrawler   = "known_crawler"
	BotEmptyUA        = "empty_user_agent"
	BotHeadless       = "headless"
	BotPrefetch       = "prefetch"
	BotMissingHeaders = "missing_headers"
	BotDatacenter     = "datacenter"
	BotRate           = "rate"

	MachineAppleMPP    = "apple_mpp"
	MachineGmailProxy  = "gmail_proxy"
	MachineYahooProxy  = "yahoo_proxy"
	MachineLinkScanner = "link_scanner"
)
