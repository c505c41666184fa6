package sandbox

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

// Expected values are what Node 22 returns for the same expressions.
func TestBufferEncodings(t *testing.T) {
	const unicode = "héllo wörld ✓ 😀"
	tests := []struct {
		name string
		js   string
		want any
	}{
		{"utf8 length", `Buffer.from("` + unicode + `").length`, int64(len(unicode))},
		{"utf8 default round trip", `Buffer.from("` + unicode + `").toString()`, unicode},
		{"utf-8 alias", `Buffer.from("` + unicode + `", "utf-8").toString("UTF8")`, unicode},
		{"hex", `Buffer.from("` + unicode + `").toString("hex")`, hex.EncodeToString([]byte(unicode))},
		{"from hex", `Buffer.from("` + hex.EncodeToString([]byte(unicode)) + `", "hex").toString()`, unicode},
		{"from hex upper case", `Buffer.from("DEADbeef", "HEX").toString("hex")`, "deadbeef"},
		{"from hex stops at bad pair", `Buffer.from("abzzcd", "hex").toString("hex")`, "ab"},
		{"from hex odd length", `Buffer.from("abc", "hex").toString("hex")`, "ab"},
		{"base64", `Buffer.from("` + unicode + `").toString("base64")`, base64.StdEncoding.EncodeToString([]byte(unicode))},
		{"base64url", `Buffer.from([0xfb, 0xff, 0xbf]).toString("base64url")`, "-_-_"},
		{"base64url no padding", `Buffer.from("a").toString("base64url")`, "YQ"},
		{"from base64url", `Buffer.from("-_-_", "base64url").toString("hex")`, "fbffbf"},
		{"from base64 accepts url alphabet", `Buffer.from("-_-_", "base64").toString("hex")`, "fbffbf"},
		{"from base64 unpadded", `Buffer.from("YQ", "base64").toString()`, "a"},
		{"from base64 skips whitespace", `Buffer.from("YW\nJj", "base64").toString()`, "abc"},
		{"latin1", `Buffer.from("é\u00ff", "latin1").toString("hex")`, "e9ff"},
		{"binary alias", `Buffer.from([0xe9, 0xff]).toString("binary")`, "é\u00ff"},
		{"latin1 keeps low byte", `Buffer.from("\u0141", "latin1").toString("hex")`, "41"},
		{"ascii", `Buffer.from([0x48, 0xe9]).toString("ascii")`, "Hi"},
		{"utf16le", `Buffer.from("a€", "utf16le").toString("hex")`, "6100ac20"},
		{"ucs2 round trip", `Buffer.from("😀", "ucs2").toString("ucs2")`, "😀"},
		{"invalid utf8 replaced", `Buffer.from([0x61, 0xff, 0x62]).toString()`, "a\uFFFDb"},
		{"lone surrogate to utf8", `Buffer.from("\ud800").toString("hex")`, "efbfbd"},
		{"toString range", `Buffer.from("hello").toString("utf8", 1, 3)`, "el"},
		{"toString range clamped", `Buffer.from("hello").toString("utf8", -5, 99)`, "hello"},
		{"toString empty range", `Buffer.from("hello").toString("utf8", 3, 1)`, ""},
		{"byteLength utf8", `Buffer.byteLength("` + unicode + `")`, int64(len(unicode))},
		{"byteLength hex", `Buffer.byteLength("abcd", "hex")`, int64(2)},
		{"byteLength base64", `Buffer.byteLength("YWJj", "base64")`, int64(3)},
		{"byteLength buffer", `Buffer.byteLength(new Uint8Array(7))`, int64(7)},
		{"byteLength ArrayBuffer", `Buffer.byteLength(new ArrayBuffer(5))`, int64(5)},
		{"isEncoding", `[Buffer.isEncoding("base64url"), Buffer.isEncoding("UTF-8"), Buffer.isEncoding("nope"), Buffer.isEncoding(1)].join()`, "true,true,false,false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runLib(t, tt.js); got != tt.want {
				t.Fatalf("%s = %#v, want %#v", tt.js, got, tt.want)
			}
		})
	}
}

func TestBufferObjects(t *testing.T) {
	tests := []struct {
		name string
		js   string
		want any
	}{
		{"from array", `Buffer.from([1, 2, 255, 256]).toString("hex")`, "0102ff00"},
		{"from Uint8Array copies", `const u = new Uint8Array([1, 2]); const b = Buffer.from(u); u[0] = 9; b[0]`, int64(1)},
		{"from ArrayBuffer shares", `const ab = new Uint8Array([1, 2, 3]).buffer; const b = Buffer.from(ab, 1, 2); new Uint8Array(ab)[1] = 7; b.toString("hex")`, "0703"},
		{"from Buffer", `Buffer.from(Buffer.from("ab")).toString()`, "ab"},
		{"indexing", `const b = Buffer.from("AB"); b[0] + b[1]`, int64(65 + 66)},
		{"length", `Buffer.from("abc").length`, int64(3)},
		{"alloc zeroed", `Buffer.alloc(3).toString("hex")`, "000000"},
		{"alloc number fill", `Buffer.alloc(3, 1).toString("hex")`, "010101"},
		{"alloc string fill", `Buffer.alloc(5, "ab").toString()`, "ababa"},
		{"alloc encoded fill", `Buffer.alloc(4, "YQ", "base64url").toString()`, "aaaa"},
		{"allocUnsafe zeroed", `Buffer.allocUnsafe(2).toString("hex")`, "0000"},
		{"concat", `Buffer.concat([Buffer.from("ab"), new Uint8Array([0x63]), Buffer.from("")]).toString()`, "abc"},
		{"concat total length", `Buffer.concat([Buffer.from("abc"), Buffer.from("def")], 4).toString()`, "abcd"},
		{"isBuffer", `[Buffer.isBuffer(Buffer.from("a")), Buffer.isBuffer(new Uint8Array(1)), Buffer.isBuffer("a"), Buffer.isBuffer(null)].join()`, "true,false,false,false"},
		{"instanceof Uint8Array", `Buffer.from("a") instanceof Uint8Array`, true},
		{"equals", `[Buffer.from("ab").equals(Buffer.from("ab")), Buffer.from("ab").equals(Buffer.from("ac"))].join()`, "true,false"},
		{"compare", `[Buffer.compare(Buffer.from("a"), Buffer.from("b")), Buffer.from("b").compare(Buffer.from("a")), Buffer.compare(Buffer.from("a"), Buffer.from("a"))].join()`, "-1,1,0"},
		{"subarray is a Buffer view", `const b = Buffer.from("hello"); const s = b.subarray(1, 3); b[1] = 0x45; Buffer.isBuffer(s) + s.toString()`, "trueEl"},
		{"slice is a view", `const b = Buffer.from("hello"); const s = b.slice(1, 3); b[1] = 0x45; s.toString()`, "El"},
		{"toJSON", `JSON.stringify(Buffer.from([1, 2]))`, `{"type":"Buffer","data":[1,2]}`},
		{"template literal", "`${Buffer.from('hi')}`", "hi"},
		{"readUInt32BE", `Buffer.from("01020304", "hex").readUInt32BE(0)`, int64(0x01020304)},
		{"toString on Uint8Array", `Buffer.prototype.toString.call(new Uint8Array([104, 105]), "hex")`, "6869"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runLib(t, tt.js); got != tt.want {
				t.Fatalf("%s = %#v, want %#v", tt.js, got, tt.want)
			}
		})
	}
}

func TestBufferErrors(t *testing.T) {
	tests := []struct {
		name string
		js   string
		want string // substring of "name: code: message"
	}{
		{"unknown encoding from", `Buffer.from("a", "utf7")`, "TypeError: ERR_UNKNOWN_ENCODING"},
		{"unknown encoding toString", `Buffer.from("a").toString("nope")`, "TypeError: ERR_UNKNOWN_ENCODING"},
		{"byteLength of number", `Buffer.byteLength(5)`, "TypeError: ERR_INVALID_ARG_TYPE"},
		{"from undefined", `Buffer.from(undefined)`, "TypeError"},
		{"alloc negative", `Buffer.alloc(-1)`, "TypeError"},
		{"compare non-buffer", `Buffer.compare("a", Buffer.from("a"))`, "TypeError: ERR_INVALID_ARG_TYPE"},
		{"concat non-buffer", `Buffer.concat(["a"])`, "TypeError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := libThrows(t, tt.js); !strings.Contains(got, tt.want) {
				t.Fatalf("%s threw %q, want %q", tt.js, got, tt.want)
			}
		})
	}
}

func TestBufferTextCodecs(t *testing.T) {
	tests := []struct {
		name string
		js   string
		want any
	}{
		{"TextEncoder encoding", `new TextEncoder().encoding`, "utf-8"},
		{"encode is a Uint8Array", `const u = new TextEncoder().encode("é"); (u instanceof Uint8Array) + ":" + Buffer.isBuffer(u) + ":" + u.length`, "true:false:2"},
		{"encode empty", `new TextEncoder().encode().length`, int64(0)},
		{"round trip unicode", `new TextDecoder().decode(new TextEncoder().encode("héllo ✓ 😀"))`, "héllo ✓ 😀"},
		{"decode ArrayBuffer", `new TextDecoder("utf-8").decode(new Uint8Array([104, 105]).buffer)`, "hi"},
		{"decode DataView", `new TextDecoder().decode(new DataView(new Uint8Array([0, 104, 105]).buffer, 1))`, "hi"},
		{"decode Buffer", `new TextDecoder().decode(Buffer.from("ok"))`, "ok"},
		{"decode undefined", `new TextDecoder().decode()`, ""},
		{"decode strips BOM", `new TextDecoder().decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x61]))`, "a"},
		{"decode ignoreBOM", `new TextDecoder("utf8", { ignoreBOM: true }).decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x61])).length`, int64(2)},
		{"decode replaces invalid", `new TextDecoder().decode(new Uint8Array([0x61, 0xff]))`, "a\uFFFD"},
		{"decoder properties", `const d = new TextDecoder("UTF-8", { fatal: true }); [d.encoding, d.fatal, d.ignoreBOM].join()`, "utf-8,true,false"},
		{"encodeInto", `const u = new Uint8Array(4); const r = new TextEncoder().encodeInto("aé✓", u); [r.read, r.written, Buffer.from(u).toString("hex")].join()`, "2,3,61c3a900"},
		{"encodeInto surrogate pair", `const u = new Uint8Array(8); const r = new TextEncoder().encodeInto("😀!", u); [r.read, r.written].join()`, "3,5"},
		{"btoa", `btoa("hello")`, "aGVsbG8="},
		{"btoa latin1", `btoa("\u00ff\u00e9")`, "/+k="},
		{"atob", `atob("aGVsbG8=")`, "hello"},
		{"atob unpadded and spaced", `atob(" aGVs bG8 ")`, "hello"},
		{"atob bytes are code units", `atob("/+k=").charCodeAt(0)`, int64(0xff)},
		{"atob btoa round trip binary", `const s = String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i)); atob(btoa(s)) === s`, true},
		{"unicode through btoa", `new TextDecoder().decode(Uint8Array.from(Array.from(atob(btoa(String.fromCharCode(...new TextEncoder().encode("✓ 😀")))), c => c.charCodeAt(0))))`, "✓ 😀"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runLib(t, tt.js); got != tt.want {
				t.Fatalf("%s = %#v, want %#v", tt.js, got, tt.want)
			}
		})
	}

	errs := []struct {
		name string
		js   string
		want string
	}{
		{"btoa above latin1", `btoa("✓")`, "InvalidCharacterError"},
		{"atob bad character", `atob("ab$d")`, "InvalidCharacterError"},
		{"atob url alphabet", `atob("-_-_")`, "InvalidCharacterError"},
		{"atob bad length", `atob("abcde")`, "InvalidCharacterError"},
		{"atob no argument", `atob()`, "TypeError"},
		{"TextDecoder other label", `new TextDecoder("utf-16le")`, "RangeError: ERR_ENCODING_NOT_SUPPORTED"},
		{"TextDecoder fatal", `new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array([0xff]))`, "TypeError: ERR_ENCODING_INVALID_ENCODED_DATA"},
		{"TextDecoder non-binary", `new TextDecoder().decode("abc")`, "TypeError"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			if got := libThrows(t, tt.js); !strings.Contains(got, tt.want) {
				t.Fatalf("%s threw %q, want %q", tt.js, got, tt.want)
			}
		})
	}
}

func TestBufferURL(t *testing.T) {
	tests := []struct {
		name string
		js   string
		want any
	}{
		{"parts", `const u = new URL("https://user:pw@example.com:8443/a/b?x=1&y=two#frag"); [u.protocol, u.hostname, u.port, u.pathname, u.search, u.hash, u.username].join(" ")`, "https: example.com 8443 /a/b ?x=1&y=two #frag user"},
		{"searchParams", `new URL("https://e.com/?a=1&a=2&b=%C3%A9").searchParams.getAll("a").join() + new URL("https://e.com/?b=%C3%A9").searchParams.get("b")`, "1,2é"},
		{"relative", `new URL("../c?d", "https://e.com/a/b/").href`, "https://e.com/a/c?d"},
		{"relative to directory", `new URL("items", "https://api.e.com/v1/").href`, "https://api.e.com/v1/items"},
		{"absolute path on base", `new URL("/c?x#y", "https://e.com/a/b").href`, "https://e.com/c?x#y"},
		{"instanceof", `new URL("https://e.com") instanceof URL`, true},
		{"invalid base throws", `(() => { try { new URL("a", "nope"); return "no" } catch (e) { return e.name } })()`, "TypeError"},
		{"URLSearchParams build", `const p = new URLSearchParams({ q: "a b&c", n: "ü" }); p.append("x", "1"); p.toString()`, "q=a+b%26c&n=%C3%BC&x=1"},
		{"URLSearchParams parse", `const p = new URLSearchParams("a=1&b=x%20y&b=z"); [p.get("a"), p.getAll("b").join("|"), p.has("c")].join()`, "1,x y|z,false"},
		{"set search param", `const u = new URL("https://e.com/p"); u.searchParams.set("k", "v w"); u.toString()`, "https://e.com/p?k=v+w"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runLib(t, tt.js); got != tt.want {
				t.Fatalf("%s = %#v, want %#v", tt.js, got, tt.want)
			}
		})
	}
	t.Run("invalid URL throws", func(t *testing.T) {
		if got := libThrows(t, `new URL("not a url")`); !strings.Contains(got, "TypeError") {
			t.Fatalf("threw %q, want a TypeError", got)
		}
	})
}
