package sandbox

import (
	"math"
	"strings"
	"time"

	"github.com/dop251/goja"
)

// newWebhooks returns the webhooks object: one JavaScript function per signature scheme in
// lib_signatures.go. They keep that file's contract — true or false, never a throw — so the
// argument conversions below turn anything unusable (a missing header, a number where a
// string belongs, a bad option) into false rather than an exception.
func (l *jsLibrary) newWebhooks() *goja.Object {
	o := l.vm.NewObject()
	l.setMethods(o, map[string]any{
		// verifyStripe(rawBody, signatureHeader, secret, {tolerance, now})
		"verifyStripe": l.verifier(func(call goja.FunctionCall) bool {
			body, ok1 := l.bodyArg(call.Argument(0))
			header, ok2 := headerValue(call.Argument(1))
			secret, ok3 := l.secretArg(call.Argument(2))
			w, ok4 := windowOption(call.Argument(3), 1)
			return ok1 && ok2 && ok3 && ok4 && verifyStripe(body, header, secret, w)
		}),
		// verifyGitHub(rawBody, signatureHeader, secret)
		"verifyGitHub": l.verifier(func(call goja.FunctionCall) bool {
			body, ok1 := l.bodyArg(call.Argument(0))
			header, ok2 := headerValue(call.Argument(1))
			secret, ok3 := l.secretArg(call.Argument(2))
			return ok1 && ok2 && ok3 && verifyGitHub(body, header, secret)
		}),
		// verifySlack(rawBody, timestampHeader, signatureHeader, secret, {tolerance, now})
		"verifySlack": l.verifier(func(call goja.FunctionCall) bool {
			body, ok1 := l.bodyArg(call.Argument(0))
			ts, ok2 := headerValue(call.Argument(1))
			header, ok3 := headerValue(call.Argument(2))
			secret, ok4 := l.secretArg(call.Argument(3))
			w, ok5 := windowOption(call.Argument(4), 1)
			return ok1 && ok2 && ok3 && ok4 && ok5 && verifySlack(body, ts, header, secret, w)
		}),
		// verifyShopify(rawBody, hmacHeader, secret)
		"verifyShopify": l.verifier(func(call goja.FunctionCall) bool {
			body, ok1 := l.bodyArg(call.Argument(0))
			header, ok2 := headerValue(call.Argument(1))
			secret, ok3 := l.secretArg(call.Argument(2))
			return ok1 && ok2 && ok3 && verifyShopify(body, header, secret)
		}),
		// verifyStandardWebhooks(rawBody, headers, secret, {tolerance, now}); the secret is
		// text ("whsec_" + base64, or raw), so it must be a string.
		"verifyStandardWebhooks": l.verifier(func(call goja.FunctionCall) bool {
			body, ok1 := l.bodyArg(call.Argument(0))
			headers, ok2 := call.Argument(1).(*goja.Object)
			secret := call.Argument(2)
			w, ok3 := windowOption(call.Argument(3), 1)
			if !ok1 || !ok2 || !ok3 || !goja.IsString(secret) {
				return false
			}
			id, ts, sig := header(headers, "webhook-id"), header(headers, "webhook-timestamp"), header(headers, "webhook-signature")
			if id == "" && ts == "" && sig == "" {
				// Svix, the scheme's origin, sends the same headers under its own name.
				id, ts, sig = header(headers, "svix-id"), header(headers, "svix-timestamp"), header(headers, "svix-signature")
			}
			return verifyStandardWebhooks(body, id, ts, sig, secret.String(), w)
		}),
		// verifyHubSpot(rawBody, headers, secret, {url, method = "POST", tolerance, now})
		"verifyHubSpot": l.verifier(func(call goja.FunctionCall) bool {
			body, ok1 := l.bodyArg(call.Argument(0))
			headers, ok2 := call.Argument(1).(*goja.Object)
			secret, ok3 := l.secretArg(call.Argument(2))
			opts := call.Argument(3)
			w, ok4 := windowOption(opts, 1000) // HubSpot's timestamps are milliseconds
			o, ok5 := opts.(*goja.Object)
			if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
				return false
			}
			uri, ok6 := headerValue(optionValue(o, "url"))
			method := "POST"
			if v := optionValue(o, "method"); !goja.IsUndefined(v) {
				var ok bool
				if method, ok = headerValue(v); !ok {
					return false
				}
			}
			return ok6 && verifyHubSpot(method, uri, body,
				header(headers, "x-hubspot-request-timestamp"), header(headers, "x-hubspot-signature-v3"), secret, w)
		}),
	})
	return o
}

// verifier adapts a verification to a JavaScript function returning a boolean.
func (l *jsLibrary) verifier(verify func(goja.FunctionCall) bool) func(goja.FunctionCall) goja.Value {
	return func(call goja.FunctionCall) goja.Value {
		return l.vm.ToValue(verify(call))
	}
}

// bodyArg accepts the raw body as a string (signed as its UTF-8 bytes, which is what was
// received when the body is valid UTF-8) or as binary data.
func (l *jsLibrary) bodyArg(v goja.Value) ([]byte, bool) {
	if goja.IsString(v) {
		return []byte(v.String()), true
	}
	return l.bytesOf(v)
}

// secretArg accepts a secret as a non-empty string (its UTF-8 bytes) or binary data.
func (l *jsLibrary) secretArg(v goja.Value) ([]byte, bool) {
	b, ok := l.bodyArg(v)
	return b, ok && len(b) > 0
}

// headerValue accepts a header as a string, or as a list of strings (a repeated header)
// of which the first is used.
func headerValue(v goja.Value) (string, bool) {
	if goja.IsString(v) {
		return v.String(), true
	}
	if o, ok := v.(*goja.Object); ok && o.ClassName() == "Array" && o.Get("length").ToInteger() > 0 {
		if first := o.Get("0"); goja.IsString(first) {
			return first.String(), true
		}
	}
	return "", false
}

// header looks a header up in a headers object by name, case-insensitively; "" when it
// is missing or not a string.
func header(headers *goja.Object, name string) string {
	if v, ok := headerValue(headers.Get(name)); ok {
		return v
	}
	for _, k := range headers.Keys() {
		if strings.EqualFold(k, name) {
			v, _ := headerValue(headers.Get(k))
			return v
		}
	}
	return ""
}

// optionValue reads an option, undefined when absent.
func optionValue(o *goja.Object, name string) goja.Value {
	if v := o.Get(name); v != nil {
		return v
	}
	return goja.Undefined()
}

// windowOption reads {tolerance, now} (both in seconds) into a window in units of
// 1/scale seconds. Missing options take the defaults (300 s, the current time); an
// option of the wrong type, negative or not finite makes the option set unusable.
func windowOption(v goja.Value, scale int64) (signatureWindow, bool) {
	tolerance := float64(defaultSignatureTolerance)
	now := float64(time.Now().UnixMilli()) / 1000
	if o, ok := v.(*goja.Object); ok {
		for _, opt := range []struct {
			name string
			dst  *float64
		}{{"tolerance", &tolerance}, {"now", &now}} {
			x := optionValue(o, opt.name)
			if goja.IsUndefined(x) {
				continue
			}
			if !goja.IsNumber(x) {
				return signatureWindow{}, false
			}
			*opt.dst = x.ToFloat()
		}
	} else if !goja.IsUndefined(v) && !goja.IsNull(v) {
		return signatureWindow{}, false
	}
	const limit = 1 << 52 // exact in a float64, far beyond any date, no overflow when scaled
	if math.IsNaN(tolerance) || math.IsNaN(now) || tolerance < 0 || now < 0 || tolerance > limit/1000 || now > limit/1000 {
		return signatureWindow{}, false
	}
	return signatureWindow{
		now:       int64(math.Floor(now * float64(scale))),
		tolerance: int64(math.Floor(tolerance * float64(scale))),
	}, true
}
