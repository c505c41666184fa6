package sandbox

import (
	"crypto/hmac"
	"crypto/md5" //nolint:gosec // offered for legacy checksums, as Node does; not for signatures
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // several providers still sign with HMAC-SHA1
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"crypto/subtle"
	"fmt"
	"hash"
	"strings"

	"github.com/dop251/goja"
	nodeerrors "github.com/dop251/goja_nodejs/errors"
)

// maxRandomBytes bounds randomBytes and getRandomValues (the Web Crypto quota), so a script
// cannot make the host allocate without limit in one call.
const maxRandomBytes = 65536

// newHashFunc returns the constructor of a digest named as Node names them
// (case-insensitive, "sha-256" and "RSA-SHA256" accepted).
func newHashFunc(name string) (func() hash.Hash, bool) {
	n := strings.TrimPrefix(strings.ToLower(name), "rsa-")
	switch n {
	case "md5":
		return md5.New, true
	case "sha1", "sha-1":
		return sha1.New, true
	case "sha224", "sha-224":
		return sha256.New224, true
	case "sha256", "sha-256":
		return sha256.New, true
	case "sha384", "sha-384":
		return sha512.New384, true
	case "sha512", "sha-512":
		return sha512.New, true
	case "sha3-256":
		return func() hash.Hash { return sha3.New256() }, true
	case "sha3-384":
		return func() hash.Hash { return sha3.New384() }, true
	case "sha3-512":
		return func() hash.Hash { return sha3.New512() }, true
	}
	return nil, false
}

// newCrypto returns the crypto object: the synchronous subset of Node's crypto module that
// webhook code uses, plus Web Crypto's getRandomValues and randomUUID.
func (l *jsLibrary) newCrypto() *goja.Object {
	vm := l.vm
	c := vm.NewObject()
	l.setMethods(c, map[string]any{
		"createHash": func(call goja.FunctionCall) goja.Value {
			newHash, ok := newHashFunc(call.Argument(0).String())
			if !ok {
				panic(l.newError(l.errorCtor, "ERR_OSSL_EVP_UNSUPPORTED", "Digest method not supported"))
			}
			return l.newDigest(newHash(), false)
		},
		"createHmac": func(call goja.FunctionCall) goja.Value {
			newHash, ok := newHashFunc(call.Argument(0).String())
			if !ok {
				panic(nodeerrors.NewTypeError(vm, "ERR_CRYPTO_INVALID_DIGEST", "Invalid digest: %s", call.Argument(0).String()))
			}
			key := l.dataArg(call.Argument(1), goja.Undefined(), "key")
			// hmac.New copies (or hashes) the key, so the script's buffer may change later.
			return l.newDigest(hmac.New(newHash, key), true)
		},
		"timingSafeEqual": func(call goja.FunctionCall) goja.Value {
			a := l.bufferArg(call.Argument(0), "buf1")
			b := l.bufferArg(call.Argument(1), "buf2")
			if len(a) != len(b) {
				panic(l.newError(l.rangeErrorCtor, "ERR_CRYPTO_TIMING_SAFE_EQUAL_LENGTH", "Input buffers must have the same byte length"))
			}
			return vm.ToValue(subtle.ConstantTimeCompare(a, b) == 1)
		},
		"randomUUID": func() string {
			return randomUUID()
		},
		"randomBytes": func(call goja.FunctionCall) goja.Value {
			if len(call.Arguments) > 1 {
				panic(nodeerrors.NewTypeError(vm, nodeerrors.ErrCodeInvalidArgType, "randomBytes with a callback is not supported; call it synchronously"))
			}
			n := call.Argument(0)
			size := n.ToFloat()
			if !goja.IsNumber(n) || size != size || size < 0 || size > maxRandomBytes || size != float64(int(size)) {
				panic(l.newError(l.rangeErrorCtor, nodeerrors.ErrCodeOutOfRange, "The value of \"size\" is out of range. It must be an integer >= 0 && <= %d", maxRandomBytes))
			}
			b := make([]byte, int(size))
			rand.Read(b)
			return l.wrapBytes(b)
		},
		"getRandomValues": func(call goja.FunctionCall) goja.Value {
			arr := call.Argument(0)
			if !l.isIntegerTypedArray(arr) {
				panic(l.domException("TypeMismatchError", "The data argument must be an integer-type TypedArray"))
			}
			b, _ := l.bytesOf(arr)
			if len(b) > maxRandomBytes {
				panic(l.domException("QuotaExceededError", fmt.Sprintf("The ArrayBufferView's byte length (%d) exceeds the number of bytes of entropy available via this API (%d)", len(b), maxRandomBytes)))
			}
			rand.Read(b) // fills the array's memory in place
			return arr
		},
	})
	return c
}

// isIntegerTypedArray reports whether v is one of the typed arrays getRandomValues fills.
func (l *jsLibrary) isIntegerTypedArray(v goja.Value) bool {
	for _, name := range []string{"Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array", "Uint32Array", "BigInt64Array", "BigUint64Array"} {
		if ctor, ok := l.vm.Get(name).(*goja.Object); ok && l.vm.InstanceOf(v, ctor) {
			return true
		}
	}
	return false
}

// newDigest returns a Hash or Hmac object over h: update(data[, inputEncoding]) is
// chainable, digest([outputEncoding]) returns a string or, without an encoding, a Buffer.
// As in Node, a Hash cannot be used after digest; an Hmac's second digest is empty.
func (l *jsLibrary) newDigest(h hash.Hash, isHmac bool) *goja.Object {
	vm := l.vm
	o := vm.NewObject()
	done := false
	l.setMethods(o, map[string]any{
		"update": func(call goja.FunctionCall) goja.Value {
			if done {
				panic(l.newError(l.errorCtor, "ERR_CRYPTO_HASH_FINALIZED", "Digest already called"))
			}
			h.Write(l.dataArg(call.Argument(0), call.Argument(1), "data"))
			return o
		},
		"digest": func(call goja.FunctionCall) goja.Value {
			var sum []byte
			switch {
			case !done:
				sum, done = h.Sum(nil), true
			case isHmac:
				sum = []byte{}
			default:
				panic(l.newError(l.errorCtor, "ERR_CRYPTO_HASH_FINALIZED", "Digest already called"))
			}
			if enc := call.Argument(0); !goja.IsUndefined(enc) && enc.String() != "buffer" {
				return vm.ToValue(decodeBytes(sum, l.encodingArg(enc, encUTF8)))
			}
			return l.wrapBytes(sum)
		},
	})
	return o
}

// randomUUID returns a random (version 4) UUID in its canonical lower-case form.
func randomUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
