package sandbox

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"testing"
	"time"
)

// TestSigWebhooksGlobal drives the webhooks global from JavaScript: the published examples
// pass, and every unusable argument is false, never an exception.
func TestSigWebhooksGlobal(t *testing.T) {
	stripeHeader := signStripe("whsec_abc", `{"a":1}`, 1700000000)
	hubspotSig := base64.StdEncoding.EncodeToString(sigMAC([]byte("cs"), "POSThttps://e.com/h"+`[{"a":1}]`+"1700000000000"))
	tests := []struct {
		name string
		js   string
		want bool
	}{
		{"github example", fmt.Sprintf(`webhooks.verifyGitHub(%q, %q, %q)`, githubBody, githubSignature, githubSecret), true},
		{"github Buffer body and secret", fmt.Sprintf(`webhooks.verifyGitHub(Buffer.from(%q), %q, Buffer.from(%q))`, githubBody, githubSignature, githubSecret), true},
		{"github header list", fmt.Sprintf(`webhooks.verifyGitHub(%q, [%q], %q)`, githubBody, githubSignature, githubSecret), true},
		{"github missing header", fmt.Sprintf(`webhooks.verifyGitHub(%q, undefined, %q)`, githubBody, githubSecret), false},
		{"github missing secret", fmt.Sprintf(`webhooks.verifyGitHub(%q, %q, undefined)`, githubBody, githubSignature), false},
		{"github empty secret", fmt.Sprintf(`webhooks.verifyGitHub(%q, %q, "")`, githubBody, githubSignature), false},
		{"github number body", fmt.Sprintf(`webhooks.verifyGitHub(42, %q, %q)`, githubSignature, githubSecret), false},
		{"no arguments", `webhooks.verifyGitHub()`, false},
		{"slack example", fmt.Sprintf(`webhooks.verifySlack(%q, %q, %q, %q, { now: %s })`, slackBody, slackTimestamp, slackSignature, slackSecret, slackTimestamp), true},
		{"slack example is stale now", fmt.Sprintf(`webhooks.verifySlack(%q, %q, %q, %q)`, slackBody, slackTimestamp, slackSignature, slackSecret), false},
		{"slack wider tolerance", fmt.Sprintf(`webhooks.verifySlack(%q, %q, %q, %q, { now: %s + 1000, tolerance: 1000 })`, slackBody, slackTimestamp, slackSignature, slackSecret, slackTimestamp), true},
		{"slack string now", fmt.Sprintf(`webhooks.verifySlack(%q, %q, %q, %q, { now: "%s" })`, slackBody, slackTimestamp, slackSignature, slackSecret, slackTimestamp), false},
		{"slack negative tolerance", fmt.Sprintf(`webhooks.verifySlack(%q, %q, %q, %q, { now: %s, tolerance: -1 })`, slackBody, slackTimestamp, slackSignature, slackSecret, slackTimestamp), false},
		{"slack NaN now", fmt.Sprintf(`webhooks.verifySlack(%q, %q, %q, %q, { now: NaN })`, slackBody, slackTimestamp, slackSignature, slackSecret), false},
		{"slack options not an object", fmt.Sprintf(`webhooks.verifySlack(%q, %q, %q, %q, 5)`, slackBody, slackTimestamp, slackSignature, slackSecret), false},
		{"stripe", fmt.Sprintf(`webhooks.verifyStripe('{"a":1}', %q, "whsec_abc", { now: 1700000100 })`, stripeHeader), true},
		{"stripe fractional now", fmt.Sprintf(`webhooks.verifyStripe('{"a":1}', %q, "whsec_abc", { now: 1700000300.9 })`, stripeHeader), true},
		{"stripe stale", fmt.Sprintf(`webhooks.verifyStripe('{"a":1}', %q, "whsec_abc", { now: 1700000301 })`, stripeHeader), false},
		{"stripe current time", fmt.Sprintf(`webhooks.verifyStripe('{"a":1}', %q, "whsec_abc")`, signStripe("whsec_abc", `{"a":1}`, nowUnix())), true},
		{"shopify", fmt.Sprintf(`webhooks.verifyShopify("body", %q, "shh")`, base64.StdEncoding.EncodeToString(sigMAC([]byte("shh"), "body"))), true},
		{"shopify hex refused", fmt.Sprintf(`webhooks.verifyShopify("body", %q, "shh")`, hex.EncodeToString(sigMAC([]byte("shh"), "body"))), false},
		{"standard webhooks vector", fmt.Sprintf(`webhooks.verifyStandardWebhooks(%q, {"webhook-id": %q, "webhook-timestamp": %q, "webhook-signature": %q}, %q, { now: %s })`, swBody, swID, swTimestamp, swSignature, swSecret, swTimestamp), true},
		{"standard webhooks mixed-case headers", fmt.Sprintf(`webhooks.verifyStandardWebhooks(%q, {"Webhook-Id": %q, "WEBHOOK-TIMESTAMP": %q, "webhook-signature": %q}, %q, { now: %s })`, swBody, swID, swTimestamp, swSignature, swSecret, swTimestamp), true},
		{"standard webhooks svix headers", fmt.Sprintf(`webhooks.verifyStandardWebhooks(%q, {"svix-id": %q, "svix-timestamp": %q, "svix-signature": %q}, %q, { now: %s })`, swBody, swID, swTimestamp, swSignature, swSecret, swTimestamp), true},
		{"standard webhooks no headers", fmt.Sprintf(`webhooks.verifyStandardWebhooks(%q, undefined, %q)`, swBody, swSecret), false},
		{"standard webhooks Buffer secret refused", fmt.Sprintf(`webhooks.verifyStandardWebhooks(%q, {"webhook-id": %q, "webhook-timestamp": %q, "webhook-signature": %q}, Buffer.from(%q), { now: %s })`, swBody, swID, swTimestamp, swSignature, swSecret, swTimestamp), false},
		{"hubspot", fmt.Sprintf(`webhooks.verifyHubSpot('[{"a":1}]', {"x-hubspot-signature-v3": %q, "x-hubspot-request-timestamp": "1700000000000"}, "cs", { url: "https://e.com/h", now: 1700000001 })`, hubspotSig), true},
		{"hubspot without url", fmt.Sprintf(`webhooks.verifyHubSpot('[{"a":1}]', {"x-hubspot-signature-v3": %q, "x-hubspot-request-timestamp": "1700000000000"}, "cs", { now: 1700000001 })`, hubspotSig), false},
		{"hubspot other method", fmt.Sprintf(`webhooks.verifyHubSpot('[{"a":1}]', {"x-hubspot-signature-v3": %q, "x-hubspot-request-timestamp": "1700000000000"}, "cs", { url: "https://e.com/h", method: "GET", now: 1700000001 })`, hubspotSig), false},
		{"hubspot stale", fmt.Sprintf(`webhooks.verifyHubSpot('[{"a":1}]', {"x-hubspot-signature-v3": %q, "x-hubspot-request-timestamp": "1700000000000"}, "cs", { url: "https://e.com/h", now: 1700000301 })`, hubspotSig), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runLib(t, tt.js); got != tt.want {
				t.Fatalf("%s = %v, want %v", tt.js, got, tt.want)
			}
		})
	}
}

// TestSigWebhooksGetterThrows checks the one way a helper can throw: a script's own getter
// on the options object throwing; the helpers add no exceptions of their own.
func TestSigWebhooksGetterThrows(t *testing.T) {
	got := libThrows(t, `webhooks.verifyStripe("b", "t=1,v1=00", "s", { get now() { throw new Error("boom") } })`)
	if got != "Error: : boom" {
		t.Fatalf("threw %q", got)
	}
}

func nowUnix() int64 { return time.Now().Unix() }
