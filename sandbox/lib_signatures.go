package sandbox

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
)

// This file holds the webhook signature schemes behind the `webhooks` global, in plain Go
// so that they are tested (and fuzzed) without a JavaScript runtime.
//
// Every verifier has the same contract: it returns true only for a well-formed header whose
// signature is the HMAC of the documented content under the given secret and, for the
// timestamped schemes, whose timestamp lies within tolerance of now (in both directions, so
// a signature dated in the future is refused as well as a stale one). Anything else —
// missing, malformed, tampered, stale, wrong secret — is false; nothing panics and nothing
// returns an error a script would have to handle. Signatures are compared with hmac.Equal.
// An empty secret verifies nothing: it is a connector whose parameter was never set, and
// anyone can compute an HMAC under an empty key.

// defaultSignatureTolerance is the replay window, in seconds, of the timestamped schemes;
// every provider here documents five minutes.
const defaultSignatureTolerance = 300

// signatureWindow says how far a signed timestamp may be from now, both in the unit of the
// scheme's timestamp (seconds, or milliseconds for HubSpot).
type signatureWindow struct {
	now       int64
	tolerance int64
}

// contains reports whether ts is within the window. Negative values never are, which also
// keeps the subtraction below from overflowing.
func (w signatureWindow) contains(ts int64) bool {
	if ts < 0 || w.now < 0 || w.tolerance < 0 {
		return false
	}
	d := ts - w.now
	if d < 0 {
		d = -d
	}
	return d <= w.tolerance
}

// parseTimestamp parses a decimal Unix timestamp: ASCII digits only (no sign, no spaces,
// no fraction), at most 18 of them so it always fits an int64.
func parseTimestamp(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// hmacSHA256 returns HMAC-SHA256 of the concatenated parts under key.
func hmacSHA256(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// equalHex reports whether the hex string sig decodes to want, in constant time with
// respect to the contents (the length of a SHA-256 MAC is public).
func equalHex(want []byte, sig string) bool {
	if len(sig) != hex.EncodedLen(len(want)) {
		return false
	}
	got, err := hex.DecodeString(sig)
	return err == nil && hmac.Equal(want, got)
}

// equalBase64 reports whether the standard, padded base64 string sig decodes to want.
func equalBase64(want []byte, sig string) bool {
	got, err := base64.StdEncoding.Strict().DecodeString(sig)
	return err == nil && len(got) == len(want) && hmac.Equal(want, got)
}

// verifyStripe checks a Stripe-Signature header, "t=<unix>,v1=<hex>[,v1=<hex>][,v0=...]":
// one v1 must be the hex HMAC-SHA256 of "<t>.<body>" under the endpoint secret (used as is,
// whsec_ prefix included), and t must be within the window. A header with two t values is
// refused rather than guessed at; schemes other than v1 are ignored.
func verifyStripe(body []byte, header string, secret []byte, w signatureWindow) bool {
	if len(secret) == 0 {
		return false
	}
	var (
		ts      string
		haveTS  bool
		v1      []string
		badPair bool
	)
	for item := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			badPair = true
			continue
		}
		switch k {
		case "t":
			if haveTS {
				return false
			}
			ts, haveTS = v, true
		case "v1":
			v1 = append(v1, v)
		}
	}
	if badPair || !haveTS || len(v1) == 0 {
		return false
	}
	t, ok := parseTimestamp(ts)
	if !ok || !w.contains(t) {
		return false
	}
	want := hmacSHA256(secret, []byte(ts), []byte("."), body)
	match := false
	for _, sig := range v1 {
		// Every candidate is compared, so timing does not reveal which one matched.
		if equalHex(want, sig) {
			match = true
		}
	}
	return match
}

// verifyGitHub checks an X-Hub-Signature-256 header, "sha256=<hex>", the HMAC-SHA256 of the
// body. The legacy SHA-1 header (X-Hub-Signature) is deliberately not accepted.
func verifyGitHub(body []byte, header string, secret []byte) bool {
	if len(secret) == 0 {
		return false
	}
	sig, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok {
		return false
	}
	return equalHex(hmacSHA256(secret, body), sig)
}

// verifySlack checks Slack's X-Slack-Signature, "v0=<hex>", the HMAC-SHA256 of
// "v0:<timestamp>:<body>", with X-Slack-Request-Timestamp (Unix seconds) within the window.
func verifySlack(body []byte, timestamp, header string, secret []byte, w signatureWindow) bool {
	if len(secret) == 0 {
		return false
	}
	timestamp = strings.TrimSpace(timestamp)
	t, ok := parseTimestamp(timestamp)
	if !ok || !w.contains(t) {
		return false
	}
	sig, ok := strings.CutPrefix(strings.TrimSpace(header), "v0=")
	if !ok {
		return false
	}
	return equalHex(hmacSHA256(secret, []byte("v0:"+timestamp+":"), body), sig)
}

// verifyShopify checks X-Shopify-Hmac-Sha256, the base64 HMAC-SHA256 of the body under the
// app's client secret.
func verifyShopify(body []byte, header string, secret []byte) bool {
	if len(secret) == 0 {
		return false
	}
	return equalBase64(hmacSHA256(secret, body), strings.TrimSpace(header))
}

// standardWebhooksKey turns a Standard Webhooks secret into the HMAC key: after the
// "whsec_" prefix the secret is base64 (an undecodable one yields no key); a secret
// without the prefix is used as raw bytes.
func standardWebhooksKey(secret string) ([]byte, bool) {
	rest, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return []byte(secret), secret != ""
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(key) == 0 {
		return nil, false
	}
	return key, true
}

// verifyStandardWebhooks checks a Standard Webhooks (standardwebhooks.com, also Svix)
// delivery: signature is a space-separated list of "<version>,<base64>" and one "v1" entry
// must be the HMAC-SHA256 of "<id>.<timestamp>.<body>"; the timestamp (Unix seconds) must be
// within the window. Entries of other versions (v1a, asymmetric) are ignored.
func verifyStandardWebhooks(body []byte, id, timestamp, signature, secret string, w signatureWindow) bool {
	if id == "" {
		return false
	}
	t, ok := parseTimestamp(strings.TrimSpace(timestamp))
	if !ok || !w.contains(t) {
		return false
	}
	key, ok := standardWebhooksKey(secret)
	if !ok {
		return false
	}
	want := hmacSHA256(key, []byte(id+"."+strings.TrimSpace(timestamp)+"."), body)
	match := false
	for _, entry := range strings.Fields(signature) {
		version, sig, ok := strings.Cut(entry, ",")
		if ok && version == "v1" && equalBase64(want, sig) {
			match = true
		}
	}
	return match
}

// hubSpotURIDecoder undoes the percent-encoding of the characters HubSpot decodes before it
// signs a v3 request URI.
var hubSpotURIDecoder = strings.NewReplacer(
	"%3A", ":", "%2F", "/", "%3F", "?", "%40", "@", "%21", "!", "%24", "$",
	"%27", "'", "%28", "(", "%29", ")", "%2A", "*", "%2C", ",", "%3B", ";",
	"%3a", ":", "%2f", "/", "%3f", "?", "%2a", "*", "%2c", ",", "%3b", ";",
)

// verifyHubSpot checks HubSpot's X-HubSpot-Signature-v3: the base64 HMAC-SHA256, under the
// app's client secret, of method + uri + body + timestamp, where the timestamp is
// X-HubSpot-Request-Timestamp in Unix milliseconds and w is in milliseconds too.
func verifyHubSpot(method, uri string, body []byte, timestamp, header string, secret []byte, w signatureWindow) bool {
	if len(secret) == 0 || method == "" || uri == "" {
		return false
	}
	timestamp = strings.TrimSpace(timestamp)
	t, ok := parseTimestamp(timestamp)
	if !ok || !w.contains(t) {
		return false
	}
	want := hmacSHA256(secret, []byte(strings.ToUpper(method)+hubSpotURIDecoder.Replace(uri)), body, []byte(timestamp))
	return equalBase64(want, strings.TrimSpace(header))
}
