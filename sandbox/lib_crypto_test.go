package sandbox

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"regexp"
	"strings"
	"testing"
)

// TestCryptoHmacRFC4231 runs the RFC 4231 test vectors through crypto.createHmac.
func TestCryptoHmacRFC4231(t *testing.T) {
	tests := []struct {
		name    string
		keyJS   string // a JavaScript expression for the key
		data    string
		sha256  string
		sha512  string
		comment string
	}{
		{
			name:   "case 1",
			keyJS:  `Buffer.alloc(20, 0x0b)`,
			data:   "Hi There",
			sha256: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
			sha512: "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
		},
		{
			name:   "case 2 string key",
			keyJS:  `"Jefe"`,
			data:   "what do ya want for nothing?",
			sha256: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
			sha512: "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
		},
		{
			name:   "case 6 key longer than block",
			keyJS:  `new Uint8Array(131).fill(0xaa)`,
			data:   "Test Using Larger Than Block-Size Key - Hash Key First",
			sha256: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
			sha512: "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
		},
	}
	for _, tt := range tests {
		for alg, want := range map[string]string{"sha256": tt.sha256, "sha512": tt.sha512} {
			t.Run(tt.name+" "+alg, func(t *testing.T) {
				js := `crypto.createHmac("` + alg + `", ` + tt.keyJS + `).update("` + tt.data + `").digest("hex")`
				if got := runLib(t, js); got != want {
					t.Fatalf("%s = %v, want %s", js, got, want)
				}
			})
		}
	}
}

// TestCryptoHmacAgainstGo compares crypto.createHmac with Go's crypto/hmac (an
// independent implementation) over algorithms, key and data forms, and output encodings.
func TestCryptoHmacAgainstGo(t *testing.T) {
	key := []byte("s3cr3t-ключ")
	data := []byte("héllo, wörld ✓")
	algs := map[string]func() hash.Hash{"sha1": sha1.New, "sha256": sha256.New, "sha512": sha512.New, "SHA256": sha256.New, "sha-256": sha256.New}
	for alg, newHash := range algs {
		m := hmac.New(newHash, key)
		m.Write(data)
		sum := m.Sum(nil)
		tests := []struct {
			name, js, want string
		}{
			{"hex", `crypto.createHmac("` + alg + `", "s3cr3t-ключ").update("héllo, wörld ✓").digest("hex")`, hex.EncodeToString(sum)},
			{"base64", `crypto.createHmac("` + alg + `", "s3cr3t-ключ").update("héllo, wörld ✓").digest("base64")`, base64.StdEncoding.EncodeToString(sum)},
			{"base64url", `crypto.createHmac("` + alg + `", "s3cr3t-ключ").update("héllo, wörld ✓").digest("base64url")`, base64.RawURLEncoding.EncodeToString(sum)},
			{"buffer", `crypto.createHmac("` + alg + `", "s3cr3t-ключ").update("héllo, wörld ✓").digest().toString("hex")`, hex.EncodeToString(sum)},
			{"chained updates", `crypto.createHmac("` + alg + `", "s3cr3t-ключ").update("héllo").update(", ").update("wörld ✓").digest("hex")`, hex.EncodeToString(sum)},
			{"separate updates", `const h = crypto.createHmac("` + alg + `", "s3cr3t-ключ"); h.update("héllo, "); h.update("wörld ✓"); h.digest("hex")`, hex.EncodeToString(sum)},
			{"buffer key and data", `crypto.createHmac("` + alg + `", Buffer.from("s3cr3t-ключ")).update(new TextEncoder().encode("héllo, wörld ✓")).digest("hex")`, hex.EncodeToString(sum)},
			{"hex input encoding", `crypto.createHmac("` + alg + `", "s3cr3t-ключ").update("` + hex.EncodeToString(data) + `", "hex").digest("hex")`, hex.EncodeToString(sum)},
		}
		for _, tt := range tests {
			t.Run(alg+" "+tt.name, func(t *testing.T) {
				if got := runLib(t, tt.js); got != tt.want {
					t.Fatalf("%s = %v, want %s", tt.js, got, tt.want)
				}
			})
		}
	}
}

func TestCryptoHash(t *testing.T) {
	tests := []struct {
		name, js, want string
	}{
		{"sha1 abc", `crypto.createHash("sha1").update("abc").digest("hex")`, "a9993e364706816aba3e25717850c26c9cd0d89d"},
		{"sha256 abc", `crypto.createHash("sha256").update("abc").digest("hex")`, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"sha512 abc", `crypto.createHash("sha512").update("a").update("bc").digest("hex")`, "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"},
		{"md5 empty", `crypto.createHash("md5").digest("hex")`, "d41d8cd98f00b204e9800998ecf8427e"},
		{"sha256 base64", `crypto.createHash("sha256").update("abc").digest("base64")`, "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="},
		{"digest buffer", `Buffer.isBuffer(crypto.createHash("sha256").digest()) + ":" + crypto.createHash("sha256").digest().length`, "true:32"},
		{"hmac second digest empty", `const h = crypto.createHmac("sha256", "k"); h.digest(); h.digest("hex")`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runLib(t, tt.js); got != tt.want {
				t.Fatalf("%s = %v, want %s", tt.js, got, tt.want)
			}
		})
	}
}

func TestCryptoTimingSafeEqual(t *testing.T) {
	tests := []struct {
		name string
		js   string
		want any
	}{
		{"equal buffers", `crypto.timingSafeEqual(Buffer.from("abc"), Buffer.from("abc"))`, true},
		{"different buffers", `crypto.timingSafeEqual(Buffer.from("abc"), Buffer.from("abd"))`, false},
		{"Uint8Array and Buffer", `crypto.timingSafeEqual(new Uint8Array([1, 2]), Buffer.from([1, 2]))`, true},
		{"empty", `crypto.timingSafeEqual(Buffer.alloc(0), new Uint8Array(0))`, true},
		{"DataView", `crypto.timingSafeEqual(new DataView(new Uint8Array([7]).buffer), Buffer.from([7]))`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runLib(t, tt.js); got != tt.want {
				t.Fatalf("%s = %v, want %v", tt.js, got, tt.want)
			}
		})
	}
}

func TestCryptoErrors(t *testing.T) {
	tests := []struct {
		name, js, want string
	}{
		{"length mismatch", `crypto.timingSafeEqual(Buffer.from("a"), Buffer.from("ab"))`, "RangeError: ERR_CRYPTO_TIMING_SAFE_EQUAL_LENGTH"},
		{"timingSafeEqual string", `crypto.timingSafeEqual("a", "a")`, "TypeError: ERR_INVALID_ARG_TYPE"},
		{"unknown hmac digest", `crypto.createHmac("sha0", "k")`, "TypeError: ERR_CRYPTO_INVALID_DIGEST"},
		{"unknown hash", `crypto.createHash("whirlpool")`, "Error: ERR_OSSL_EVP_UNSUPPORTED"},
		{"missing key", `crypto.createHmac("sha256")`, "TypeError: ERR_INVALID_ARG_TYPE"},
		{"update number", `crypto.createHash("sha256").update(5)`, "TypeError: ERR_INVALID_ARG_TYPE"},
		{"update after digest", `const h = crypto.createHash("sha256"); h.digest(); h.update("a")`, "Error: ERR_CRYPTO_HASH_FINALIZED"},
		{"hash digest twice", `const h = crypto.createHash("sha256"); h.digest(); h.digest()`, "Error: ERR_CRYPTO_HASH_FINALIZED"},
		{"unknown digest encoding", `crypto.createHash("sha256").digest("base32")`, "TypeError: ERR_UNKNOWN_ENCODING"},
		{"getRandomValues float", `crypto.getRandomValues(new Float64Array(2))`, "TypeMismatchError"},
		{"getRandomValues quota", `crypto.getRandomValues(new Uint8Array(65537))`, "QuotaExceededError"},
		{"randomBytes too many", `crypto.randomBytes(1 << 20)`, "RangeError"},
		{"randomBytes callback", `crypto.randomBytes(8, () => {})`, "TypeError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := libThrows(t, tt.js); !strings.Contains(got, tt.want) {
				t.Fatalf("%s threw %q, want %q", tt.js, got, tt.want)
			}
		})
	}
}

func TestCryptoRandom(t *testing.T) {
	uuidV4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	t.Run("randomUUID", func(t *testing.T) {
		got := runLib(t, `[crypto.randomUUID(), crypto.randomUUID()].join(" ")`).(string)
		a, b, _ := strings.Cut(got, " ")
		if !uuidV4.MatchString(a) || !uuidV4.MatchString(b) || a == b {
			t.Fatalf("randomUUID gave %q and %q", a, b)
		}
	})
	t.Run("getRandomValues fills in place", func(t *testing.T) {
		got := runLib(t, `const a = new Uint32Array(16); const r = crypto.getRandomValues(a); (r === a) + ":" + a.some(x => x !== 0)`)
		if got != "true:true" {
			t.Fatalf("getRandomValues: %v", got)
		}
	})
	t.Run("randomBytes", func(t *testing.T) {
		got := runLib(t, `const b = crypto.randomBytes(32); Buffer.isBuffer(b) + ":" + b.length + ":" + (b.toString("hex") !== crypto.randomBytes(32).toString("hex"))`)
		if got != "true:32:true" {
			t.Fatalf("randomBytes: %v", got)
		}
	})
}
