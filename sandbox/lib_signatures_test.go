package sandbox

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// The signers below are written from each provider's documentation, separately from the
// verifiers, so a test compares two readings of the scheme rather than one with itself.

func sigMAC(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func signStripe(secret, body string, t int64) string {
	return fmt.Sprintf("t=%d,v1=%s", t, hex.EncodeToString(sigMAC([]byte(secret), fmt.Sprintf("%d.%s", t, body))))
}

func signStandardWebhooks(key []byte, id string, t int64, body string) string {
	return "v1," + base64.StdEncoding.EncodeToString(sigMAC(key, fmt.Sprintf("%s.%d.%s", id, t, body)))
}

const (
	// Slack's documented example (api.slack.com/authentication/verifying-requests-from-slack).
	slackSecret    = "8f742231b10e8888abcd99yyyzzz85a5"
	slackTimestamp = "1531420618"
	slackBody      = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	slackSignature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

	// GitHub's documented example (docs.github.com, validating webhook deliveries).
	githubSecret    = "It's a Secret to Everybody"
	githubBody      = "Hello, World!"
	githubSignature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

	// The Standard Webhooks specification's test vector.
	swSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	swID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	swTimestamp = "1614265330"
	swBody      = `{"test": 2432232314}`
	swSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func window(now int64) signatureWindow {
	return signatureWindow{now: now, tolerance: defaultSignatureTolerance}
}

func TestSigStripe(t *testing.T) {
	const secret, body, ts = "whsec_test_secret", `{"id":"evt_1","object":"event"}`, int64(1700000000)
	good := signStripe(secret, body, ts)
	v1 := good[strings.Index(good, "v1="):]
	tests := []struct {
		name   string
		body   string
		header string
		secret string
		now    int64
		want   bool
	}{
		{"valid", body, good, secret, ts, true},
		{"valid at edge of window", body, good, secret, ts + 300, true},
		{"valid early at edge", body, good, secret, ts - 300, true},
		{"several v1, one matching", body, fmt.Sprintf("t=%d,v1=%s,%s,v0=abc", ts, strings.Repeat("0", 64), v1), secret, ts, true},
		{"spaces around items", body, fmt.Sprintf("t=%d, %s", ts, v1), secret, ts, true},
		{"upper-case hex", body, fmt.Sprintf("t=%d,v1=%s", ts, strings.ToUpper(v1[3:])), secret, ts, true},
		{"stale", body, good, secret, ts + 301, false},
		{"future", body, good, secret, ts - 301, false},
		{"tampered body", body + " ", good, secret, ts, false},
		{"wrong secret", body, good, "whsec_other", ts, false},
		{"empty secret", body, signStripe("", body, ts), "", ts, false},
		{"empty header", body, "", secret, ts, false},
		{"missing t", body, v1, secret, ts, false},
		{"missing v1", body, fmt.Sprintf("t=%d", ts), secret, ts, false},
		{"only v0", body, fmt.Sprintf("t=%d,v0=%s", ts, v1[3:]), secret, ts, false},
		{"non-numeric t", body, "t=abc," + v1, secret, ts, false},
		{"signed t", body, fmt.Sprintf("t=+%d,%s", ts, v1), secret, ts, false},
		{"two t", body, fmt.Sprintf("t=%d,t=%d,%s", ts, ts, v1), secret, ts, false},
		{"bad hex", body, fmt.Sprintf("t=%d,v1=%s", ts, strings.Repeat("zz", 32)), secret, ts, false},
		{"truncated signature", body, good[:len(good)-2], secret, ts, false},
		{"item without =", body, good + ",junk", secret, ts, false},
		{"huge t", body, "t=99999999999999999999," + v1, secret, ts, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := verifyStripe([]byte(tt.body), tt.header, []byte(tt.secret), window(tt.now)); got != tt.want {
				t.Fatalf("verifyStripe(%q) = %v, want %v", tt.header, got, tt.want)
			}
		})
	}
}

func TestSigGitHub(t *testing.T) {
	tests := []struct {
		name, body, header, secret string
		want                       bool
	}{
		{"documented example", githubBody, githubSignature, githubSecret, true},
		{"upper-case hex", githubBody, "sha256=" + strings.ToUpper(githubSignature[7:]), githubSecret, true},
		{"tampered body", "Hello, World?", githubSignature, githubSecret, false},
		{"wrong secret", githubBody, githubSignature, "It's a secret to everybody", false},
		{"empty secret", githubBody, "sha256=" + hex.EncodeToString(sigMAC(nil, githubBody)), "", false},
		{"missing prefix", githubBody, githubSignature[7:], githubSecret, false},
		{"sha1 prefix", githubBody, "sha1=" + githubSignature[7:], githubSecret, false},
		{"empty header", githubBody, "", githubSecret, false},
		{"bad hex", githubBody, "sha256=" + strings.Repeat("g", 64), githubSecret, false},
		{"short", githubBody, githubSignature[:20], githubSecret, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := verifyGitHub([]byte(tt.body), tt.header, []byte(tt.secret)); got != tt.want {
				t.Fatalf("verifyGitHub(%q) = %v, want %v", tt.header, got, tt.want)
			}
		})
	}
}

func TestSigSlack(t *testing.T) {
	ts, _ := strconv.ParseInt(slackTimestamp, 10, 64)
	tests := []struct {
		name, body, timestamp, header, secret string
		now                                   int64
		want                                  bool
	}{
		{"documented example", slackBody, slackTimestamp, slackSignature, slackSecret, ts + 10, true},
		{"stale", slackBody, slackTimestamp, slackSignature, slackSecret, ts + 301, false},
		{"future", slackBody, slackTimestamp, slackSignature, slackSecret, ts - 301, false},
		{"tampered body", slackBody + "&x=1", slackTimestamp, slackSignature, slackSecret, ts, false},
		{"other timestamp", slackBody, "1531420619", slackSignature, slackSecret, ts, false},
		{"wrong secret", slackBody, slackTimestamp, slackSignature, "8f742231b10e8888abcd99yyyzzz85a6", ts, false},
		{"missing version", slackBody, slackTimestamp, slackSignature[3:], slackSecret, ts, false},
		{"other version", slackBody, slackTimestamp, "v1=" + slackSignature[3:], slackSecret, ts, false},
		{"empty timestamp", slackBody, "", slackSignature, slackSecret, ts, false},
		{"non-numeric timestamp", slackBody, "1531420618.5", slackSignature, slackSecret, ts, false},
		{"empty signature", slackBody, slackTimestamp, "", slackSecret, ts, false},
		{"bad hex", slackBody, slackTimestamp, "v0=" + strings.Repeat("x", 64), slackSecret, ts, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := verifySlack([]byte(tt.body), tt.timestamp, tt.header, []byte(tt.secret), window(tt.now)); got != tt.want {
				t.Fatalf("verifySlack = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSigShopify(t *testing.T) {
	const secret, body = "shpss_example", `{"id":820982911946154508,"email":"jon@example.com"}`
	good := base64.StdEncoding.EncodeToString(sigMAC([]byte(secret), body))
	tests := []struct {
		name, body, header, secret string
		want                       bool
	}{
		{"valid", body, good, secret, true},
		{"surrounding spaces", body, " " + good + " ", secret, true},
		{"tampered body", body[1:], good, secret, false},
		{"wrong secret", body, good, secret + "x", false},
		{"hex instead of base64", body, hex.EncodeToString(sigMAC([]byte(secret), body)), secret, false},
		{"unpadded", body, strings.TrimRight(good, "="), secret, false},
		{"url alphabet", body, base64.URLEncoding.EncodeToString(sigMAC([]byte(secret), body)), secret, strings.ContainsAny(good, "+/") == false},
		{"empty header", body, "", secret, false},
		{"not base64", body, "%%%%", secret, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := verifyShopify([]byte(tt.body), tt.header, []byte(tt.secret)); got != tt.want {
				t.Fatalf("verifyShopify(%q) = %v, want %v", tt.header, got, tt.want)
			}
		})
	}
}

func TestSigStandardWebhooks(t *testing.T) {
	ts, _ := strconv.ParseInt(swTimestamp, 10, 64)
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(swSecret, "whsec_"))
	other := signStandardWebhooks([]byte("another key"), swID, ts, swBody)
	tests := []struct {
		name, body, id, timestamp, sig, secret string
		now                                    int64
		want                                   bool
	}{
		{"specification vector", swBody, swID, swTimestamp, swSignature, swSecret, ts, true},
		{"independent signer agrees", swBody, swID, swTimestamp, signStandardWebhooks(key, swID, ts, swBody), swSecret, ts, true},
		{"several signatures, one matching", swBody, swID, swTimestamp, other + " v1a,abc " + swSignature, swSecret, ts, true},
		{"raw secret without prefix", swBody, swID, swTimestamp, signStandardWebhooks([]byte("plain secret"), swID, ts, swBody), "plain secret", ts, true},
		{"within tolerance after", swBody, swID, swTimestamp, swSignature, swSecret, ts + 300, true},
		{"within tolerance before", swBody, swID, swTimestamp, swSignature, swSecret, ts - 300, true},
		{"stale", swBody, swID, swTimestamp, swSignature, swSecret, ts + 301, false},
		{"future", swBody, swID, swTimestamp, swSignature, swSecret, ts - 301, false},
		{"tampered body", `{"test": 2432232315}`, swID, swTimestamp, swSignature, swSecret, ts, false},
		{"other id", swBody, "msg_other", swTimestamp, swSignature, swSecret, ts, false},
		{"wrong secret", swBody, swID, swTimestamp, swSignature, "whsec_" + base64.StdEncoding.EncodeToString([]byte("nope")), ts, false},
		{"prefixed secret taken raw would differ", swBody, swID, swTimestamp, swSignature, strings.TrimPrefix(swSecret, "whsec_"), ts, false},
		{"undecodable secret", swBody, swID, swTimestamp, swSignature, "whsec_!!!", ts, false},
		{"empty secret", swBody, swID, swTimestamp, signStandardWebhooks(nil, swID, ts, swBody), "", ts, false},
		{"only another key's signature", swBody, swID, swTimestamp, other, swSecret, ts, false},
		{"missing version", swBody, swID, swTimestamp, swSignature[3:], swSecret, ts, false},
		{"v1a only", swBody, swID, swTimestamp, "v1a" + swSignature[2:], swSecret, ts, false},
		{"empty signature", swBody, swID, swTimestamp, "", swSecret, ts, false},
		{"empty id", swBody, "", swTimestamp, swSignature, swSecret, ts, false},
		{"empty timestamp", swBody, swID, "", swSignature, swSecret, ts, false},
		{"negative timestamp", swBody, swID, "-" + swTimestamp, swSignature, swSecret, ts, false},
		{"bad base64", swBody, swID, swTimestamp, "v1,****", swSecret, ts, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := verifyStandardWebhooks([]byte(tt.body), tt.id, tt.timestamp, tt.sig, tt.secret, window(tt.now)); got != tt.want {
				t.Fatalf("verifyStandardWebhooks = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSigHubSpot(t *testing.T) {
	const secret, body, uri = "hubspot-client-secret", `[{"eventId":1}]`, "https://hooks.example.com/w/hubspot?portal=42"
	tsMillis := int64(1700000000123)
	ts := strconv.FormatInt(tsMillis, 10)
	sign := func(method, u string) string {
		return base64.StdEncoding.EncodeToString(sigMAC([]byte(secret), method+u+body+ts))
	}
	good := sign("POST", uri)
	w := signatureWindow{now: tsMillis, tolerance: defaultSignatureTolerance * 1000}
	tests := []struct {
		name, method, uri, body, ts, sig, secret string
		now                                      int64
		want                                     bool
	}{
		{"valid", "POST", uri, body, ts, good, secret, tsMillis, true},
		{"lower-case method", "post", uri, body, ts, good, secret, tsMillis, true},
		{"decoded characters", "POST", "https://hooks.example.com/w/hubspot%3Fportal=42", body, ts, good, secret, tsMillis, true},
		{"stale", "POST", uri, body, ts, good, secret, tsMillis + 300001, false},
		{"future", "POST", uri, body, ts, good, secret, tsMillis - 300001, false},
		{"other method", "PUT", uri, body, ts, good, secret, tsMillis, false},
		{"other uri", "POST", uri + "&x=1", body, ts, good, secret, tsMillis, false},
		{"tampered body", "POST", uri, body + " ", ts, good, secret, tsMillis, false},
		{"wrong secret", "POST", uri, body, ts, good, "other", tsMillis, false},
		{"no uri", "POST", "", body, ts, good, secret, tsMillis, false},
		{"no timestamp", "POST", uri, body, "", good, secret, tsMillis, false},
		{"empty signature", "POST", uri, body, ts, "", secret, tsMillis, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := w
			w.now = tt.now
			if got := verifyHubSpot(tt.method, tt.uri, []byte(tt.body), tt.ts, tt.sig, []byte(tt.secret), w); got != tt.want {
				t.Fatalf("verifyHubSpot = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSigWindow(t *testing.T) {
	tests := []struct {
		name string
		w    signatureWindow
		ts   int64
		want bool
	}{
		{"equal", signatureWindow{now: 10, tolerance: 0}, 10, true},
		{"zero tolerance off by one", signatureWindow{now: 10, tolerance: 0}, 11, false},
		{"negative ts", signatureWindow{now: 10, tolerance: 300}, -1, false},
		{"negative now", signatureWindow{now: -1, tolerance: 300}, 0, false},
		{"negative tolerance", signatureWindow{now: 10, tolerance: -1}, 10, false},
		{"extremes do not overflow", signatureWindow{now: 0, tolerance: 300}, 1<<63 - 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.w.contains(tt.ts); got != tt.want {
				t.Fatalf("%+v.contains(%d) = %v, want %v", tt.w, tt.ts, got, tt.want)
			}
		})
	}
}

// hmacEquivalentKeys reports whether two HMAC-SHA256 keys are the same key: HMAC pads a
// key to the block size with zeros (so "" and "\x00" are one key) and hashes a longer one.
func hmacEquivalentKeys(a, b []byte) bool {
	norm := func(k []byte) []byte {
		if len(k) > sha256.BlockSize {
			s := sha256.Sum256(k)
			k = s[:]
		}
		return append(bytes.Clone(k), make([]byte, sha256.BlockSize-len(k))...)
	}
	return bytes.Equal(norm(a), norm(b))
}

// FuzzSigVerify checks, for arbitrary inputs, that no verifier panics on any header and
// that a correctly formed signature made with one secret is accepted under that secret and
// never under another (another HMAC key: secrets differing only in trailing zero bytes are
// one key to HMAC, a property of the algorithm, not of these verifiers).
func FuzzSigVerify(f *testing.F) {
	f.Add([]byte(githubBody), githubSignature, githubSecret, "other", int64(1700000000))
	f.Add([]byte(slackBody), slackSignature, slackSecret, slackSecret+"x", int64(1531420618))
	f.Add([]byte(swBody), swSignature, swSecret, "whsec_YQ==", int64(1614265330))
	f.Add([]byte(""), "t=1,v1=00,v1=", "", "a", int64(0))
	f.Add([]byte("x"), "t=1700000000,v1="+strings.Repeat("a", 64), "whsec_", "whsec_YR==", int64(-5))
	f.Add([]byte("\xff\x00"), "v1,=== v1a,x   v1,", "s", "S", int64(1<<62))
	f.Add([]byte{}, "", "", "\x00", int64(0)) // one HMAC key: found by the fuzzer
	f.Fuzz(func(t *testing.T, body []byte, header, secret, other string, ts int64) {
		w := window(ts)
		// Arbitrary headers: any result, but no panic.
		verifyStripe(body, header, []byte(secret), w)
		verifyGitHub(body, header, []byte(secret))
		verifySlack(body, header, header, []byte(secret), w)
		verifyShopify(body, header, []byte(secret))
		verifyStandardWebhooks(body, header, header, header, secret, w)
		verifyHubSpot("POST", header, body, header, header, []byte(secret), w)

		if ts < 0 || ts > 1<<40 {
			ts &= 1<<40 - 1 // a timestamp the schemes can carry
		}
		w = window(ts)
		tsStr := strconv.FormatInt(ts, 10)
		for _, c := range []struct{ signer, verifier string }{{secret, secret}, {other, secret}} {
			accept := c.verifier != "" && hmacEquivalentKeys([]byte(c.signer), []byte(c.verifier))
			s := []byte(c.signer)
			if got := verifyStripe(body, signStripe(c.signer, string(body), ts), []byte(c.verifier), w); got != accept {
				t.Errorf("stripe signed with %q, verified with %q: %v", c.signer, c.verifier, got)
			}
			if got := verifyGitHub(body, "sha256="+hex.EncodeToString(sigMAC(s, string(body))), []byte(c.verifier)); got != accept {
				t.Errorf("github signed with %q, verified with %q: %v", c.signer, c.verifier, got)
			}
			if got := verifySlack(body, tsStr, "v0="+hex.EncodeToString(sigMAC(s, "v0:"+tsStr+":"+string(body))), []byte(c.verifier), w); got != accept {
				t.Errorf("slack signed with %q, verified with %q: %v", c.signer, c.verifier, got)
			}
			if got := verifyShopify(body, base64.StdEncoding.EncodeToString(sigMAC(s, string(body))), []byte(c.verifier)); got != accept {
				t.Errorf("shopify signed with %q, verified with %q: %v", c.signer, c.verifier, got)
			}
			// Standard Webhooks: two secret strings can name the same key ("whsec_YQ==" and
			// "a"); what must hold is that a different key is refused.
			signKey, ok1 := standardWebhooksKey(c.signer)
			verifyKey, ok2 := standardWebhooksKey(c.verifier)
			if ok1 {
				wantSW := ok2 && hmacEquivalentKeys(signKey, verifyKey)
				if got := verifyStandardWebhooks(body, "msg_1", tsStr, signStandardWebhooks(signKey, "msg_1", ts, string(body)), c.verifier, w); got != wantSW {
					t.Errorf("standard webhooks signed with %q, verified with %q: %v", c.signer, c.verifier, got)
				}
			}
		}
	})
}
