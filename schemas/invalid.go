package schemas

// InvalidReason is why a raw hit cannot become an event. The edge writes
// it into RawHit.invalid_reason (HitFields.InvalidReason) and still
// publishes the hit; the processor checks the rest (Validate in the
// processor) and writes every invalid hit to the dead-letter topic with the
// header reason "invalid: <reason>". Nothing invalid is counted.
type InvalidReason string

// Invalid reasons.
const (
	InvalidMissingCID   InvalidReason = "missing_cid"     // no content id
	InvalidBadCID       InvalidReason = "bad_cid"         // a content id outside the id byte class or too long
	InvalidBadKind      InvalidReason = "bad_kind"        // an unknown event kind
	InvalidBadID        InvalidReason = "bad_id"          // a site, campaign, cookie, ad, creative, placement or user id that is malformed
	InvalidBadClick     InvalidReason = "bad_click"       // a click whose destination was neither signed nor allowed
	InvalidBadProps     InvalidReason = "bad_props"       // too many custom properties, or a malformed key
	InvalidTooManyParam InvalidReason = "too_many_params" // more query parameters than the edge accepts
	InvalidBadOrigin    InvalidReason = "bad_origin"      // no event id or receive time (never from the edge)

	// Conversions: an order id, a value in at most 6 decimals and an
	// ISO 4217 currency, each checked; nothing is clamped or dropped
	// silently.
	InvalidBadOrderID      InvalidReason = "bad_order_id"           // outside the id byte class or too long
	InvalidBadValue        InvalidReason = "bad_value"              // not a decimal number with at most 6 digits after the point (NaN, exponents, "1,5")
	InvalidValueTooLarge   InvalidReason = "value_too_large"        // 10^12 currency units or more
	InvalidNegativeValue   InvalidReason = "negative_value"         // below zero: refunds are not conversions
	InvalidUnknownCurrency InvalidReason = "unknown_currency"       // not an active ISO 4217 code
	InvalidValueNoCurrency InvalidReason = "value_without_currency" // a value other than 0 without a currency: it could not be summed
)

// SignatureError is why a signed pixel does not verify
// (RawHit.signature_error). A hit that is not verified is still valid: the
// content id's signing policy decides how it counts.
type SignatureError string

// Signature errors.
const (
	SignatureUnknownKey   SignatureError = "unknown_key"     // kid names no key of the edge
	SignatureBad          SignatureError = "bad_signature"   // the HMAC does not match: forged, or a signed parameter altered
	SignatureExpired      SignatureError = "expired"         // exp has passed
	SignatureUnsignedTail SignatureError = "unsigned_suffix" // parameters other than cb after sig
)

// UnverifiedReason is why an event under a signing policy is not verified
// (Event.unverified_reason): Unsigned, or the hit's SignatureError.
type UnverifiedReason string

// Unsigned: the pixel carried no signature. It is never a SignatureError
// (RawHit.signature_error is empty for an unsigned pixel).
const Unsigned UnverifiedReason = "unsigned"

// DeadLetterKind is the kind of a dead letter: the "reason" header of a
// pixel.dlq.v1 record is "<kind>: <detail>" (DeadLetterReason).
type DeadLetterKind string

// Dead-letter kinds.
const (
	DeadLetterDecode  DeadLetterKind = "decode"  // the bytes are no raw hit; detail: the decoder's error
	DeadLetterInvalid DeadLetterKind = "invalid" // an invalid hit; detail: an InvalidReason
	DeadLetterLate    DeadLetterKind = "late"    // an event older than the aggregator's late horizon
)

// DeadLetterReason returns the "reason" header of a dead letter.
func DeadLetterReason(kind DeadLetterKind, detail string) string { return string(kind) + ": " + detail }

// Label is a label reason: why an event is labelled bot (Event.bot_reasons),
// or why an open is a machine's (those set machine_open too).
type Label string

// Label reasons.
const (
	BotKnownCrawler   Label = "known_crawler"
	BotEmptyUA        Label = "empty_user_agent"
	BotHeadless       Label = "headless"
	BotPrefetch       Label = "prefetch"
	BotMissingHeaders Label = "missing_headers"
	BotDatacenter     Label = "datacenter"
	BotRate           Label = "rate"

	MachineAppleMPP    Label = "apple_mpp"
	MachineGmailProxy  Label = "gmail_proxy"
	MachineYahooProxy  Label = "yahoo_proxy"
	MachineLinkScanner Label = "link_scanner"
)
