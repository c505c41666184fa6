package sandbox

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/dop251/goja"
	nodeerrors "github.com/dop251/goja_nodejs/errors"
)

// encoding is one of Node's Buffer string encodings.
type encoding uint8

const (
	encUTF8 encoding = iota
	encHex
	encBase64
	encBase64URL
	encLatin1
	encASCII
	encUTF16LE
)

// parseEncoding maps an encoding name, case-insensitively and with Node's aliases, to
// the encoding.
func parseEncoding(name string) (encoding, bool) {
	switch strings.ToLower(name) {
	case "utf8", "utf-8":
		return encUTF8, true
	case "hex":
		return encHex, true
	case "base64":
		return encBase64, true
	case "base64url":
		return encBase64URL, true
	case "latin1", "binary":
		return encLatin1, true
	case "ascii":
		return encASCII, true
	case "utf16le", "utf-16le", "ucs2", "ucs-2":
		return encUTF16LE, true
	}
	return 0, false
}

// encodingArg reads an optional encoding argument: undefined or null is def, a known name
// is its encoding, anything else throws Node's ERR_UNKNOWN_ENCODING TypeError.
func (l *jsLibrary) encodingArg(v goja.Value, def encoding) encoding {
	if goja.IsUndefined(v) || goja.IsNull(v) {
		return def
	}
	if goja.IsString(v) {
		if e, ok := parseEncoding(v.String()); ok {
			return e
		}
	}
	panic(nodeerrors.NewTypeError(l.vm, "ERR_UNKNOWN_ENCODING", "Unknown encoding: %s", v.String()))
}

// codeUnits returns the UTF-16 code units of a JavaScript string value.
func codeUnits(v goja.Value) []uint16 {
	s, ok := v.ToString().(goja.String)
	if !ok {
		return utf16.Encode([]rune(v.String()))
	}
	units := make([]uint16, s.Length())
	for i := range units {
		units[i] = s.CharAt(i)
	}
	return units
}

// encodeString turns a JavaScript string into bytes the way Buffer.from(string, enc) does:
// UTF-8 writes lone surrogates as U+FFFD, latin1 and ascii keep the low byte of each code
// unit, and hex and base64 decode leniently, stopping at the first character that does not
// fit (Node never throws for bad hex or base64 input).
func encodeString(v goja.Value, enc encoding) []byte {
	switch enc {
	case encHex:
		return decodeHexLenient(v.String())
	case encBase64, encBase64URL:
		return decodeBase64Lenient(v.String())
	case encLatin1, encASCII:
		units := codeUnits(v)
		b := make([]byte, len(units))
		for i, u := range units {
			b[i] = byte(u)
		}
		return b
	case encUTF16LE:
		units := codeUnits(v)
		b := make([]byte, 2*len(units))
		for i, u := range units {
			b[2*i], b[2*i+1] = byte(u), byte(u>>8)
		}
		return b
	}
	// goja converts lone surrogates to U+FFFD in String(), as WHATWG UTF-8 encoding does.
	return []byte(v.String())
}

// decodeBytes turns bytes into a string the way buf.toString(enc) does.
func decodeBytes(b []byte, enc encoding) string {
	switch enc {
	case encHex:
		return hex.EncodeToString(b)
	case encBase64:
		return base64.StdEncoding.EncodeToString(b)
	case encBase64URL:
		return base64.RawURLEncoding.EncodeToString(b)
	case encLatin1:
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = rune(c)
		}
		return string(r)
	case encASCII:
		r := make([]byte, len(b))
		for i, c := range b {
			r[i] = c & 0x7f
		}
		return string(r)
	case encUTF16LE:
		units := make([]uint16, len(b)/2)
		for i := range units {
			units[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
		}
		return string(utf16.Decode(units))
	}
	return decodeUTF8(b)
}

// decodeUTF8 decodes UTF-8, replacing each invalid byte with U+FFFD.
func decodeUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b))
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		sb.WriteRune(r) // utf8.RuneError is U+FFFD
		b = b[n:]
	}
	return sb.String()
}

// decodeHexLenient decodes pairs of hex digits up to the first pair that is not one.
func decodeHexLenient(s string) []byte {
	out := make([]byte, 0, len(s)/2)
	for i := 0; i+1 < len(s); i += 2 {
		hi, ok1 := fromHexChar(s[i])
		lo, ok2 := fromHexChar(s[i+1])
		if !ok1 || !ok2 {
			break
		}
		out = append(out, hi<<4|lo)
	}
	return out
}

func fromHexChar(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// base64Value maps a character of either base64 alphabet (standard or URL-safe) to its
// six bits.
func base64Value(c byte) (byte, bool) {
	switch {
	case 'A' <= c && c <= 'Z':
		return c - 'A', true
	case 'a' <= c && c <= 'z':
		return c - 'a' + 26, true
	case '0' <= c && c <= '9':
		return c - '0' + 52, true
	case c == '+' || c == '-':
		return 62, true
	case c == '/' || c == '_':
		return 63, true
	}
	return 0, false
}

// decodeBase64Lenient decodes base64 as Node's Buffer does: both alphabets, padding
// optional, characters outside the alphabet skipped, decoding stops at the first '='.
func decodeBase64Lenient(s string) []byte {
	out := make([]byte, 0, len(s)*3/4)
	var acc uint32
	var bits uint
	for i := 0; i < len(s); i++ {
		if s[i] == '=' {
			break
		}
		v, ok := base64Value(s[i])
		if !ok {
			continue
		}
		acc = acc<<6 | uint32(v)
		bits += 6
		if bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>bits))
		}
	}
	return out
}

// btoa implements the WHATWG btoa: a string of code units up to 0xFF, as bytes, in base64.
func (l *jsLibrary) btoa(call goja.FunctionCall) goja.Value {
	if len(call.Arguments) == 0 {
		panic(nodeerrors.NewTypeError(l.vm, "ERR_MISSING_ARGS", "The \"data\" argument must be specified"))
	}
	units := codeUnits(call.Argument(0))
	b := make([]byte, len(units))
	for i, u := range units {
		if u > 0xff {
			panic(l.domException("InvalidCharacterError", "Invalid character"))
		}
		b[i] = byte(u)
	}
	return l.vm.ToValue(base64.StdEncoding.EncodeToString(b))
}

// atob implements the WHATWG forgiving-base64 decode and returns one code unit per byte.
func (l *jsLibrary) atob(call goja.FunctionCall) goja.Value {
	if len(call.Arguments) == 0 {
		panic(nodeerrors.NewTypeError(l.vm, "ERR_MISSING_ARGS", "The \"data\" argument must be specified"))
	}
	s := strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\f', '\r', ' ':
			return -1
		}
		return r
	}, call.Argument(0).String())
	if len(s)%4 == 0 {
		s = strings.TrimSuffix(s, "=")
		s = strings.TrimSuffix(s, "=")
	}
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil || len(s)%4 == 1 {
		panic(l.domException("InvalidCharacterError", "The string to be decoded is not correctly encoded."))
	}
	return l.vm.ToValue(decodeBytes(b, encLatin1))
}

// domException returns an Error named like the DOMException a browser or Node would throw
// (scripts test err.name).
func (l *jsLibrary) domException(name, message string) *goja.Object {
	e := l.newError(l.errorCtor, "", "%s", message)
	_ = e.Set("name", name)
	return e
}

// newTextEncoder returns the WHATWG TextEncoder constructor (UTF-8 only, as specified).
func (l *jsLibrary) newTextEncoder() *goja.Object {
	vm := l.vm
	proto := vm.NewObject()
	ctor := vm.ToValue(func(call goja.ConstructorCall) *goja.Object {
		_ = call.This.DefineDataProperty("encoding", vm.ToValue("utf-8"), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE)
		return nil
	}).ToObject(vm)
	l.setMethods(proto, map[string]any{
		"encode": func(call goja.FunctionCall) goja.Value {
			arg := call.Argument(0)
			if goja.IsUndefined(arg) {
				return l.newUint8Array([]byte{})
			}
			return l.newUint8Array(encodeString(arg, encUTF8))
		},
		"encodeInto": func(call goja.FunctionCall) goja.Value {
			dst, ok := l.bytesOf(call.Argument(1))
			if !ok {
				panic(nodeerrors.NewTypeError(l.vm, nodeerrors.ErrCodeInvalidArgType, "The \"dest\" argument must be an instance of Uint8Array"))
			}
			read, written := encodeInto(codeUnits(call.Argument(0)), dst)
			res := vm.NewObject()
			_ = res.Set("read", read)
			_ = res.Set("written", written)
			return res
		},
	})
	linkConstructor(ctor, proto)
	return ctor
}

// encodeInto writes the UTF-8 encoding of whole characters of units into dst while they
// fit, returning the code units read and bytes written.
func encodeInto(units []uint16, dst []byte) (read, written int) {
	for read < len(units) {
		r, n := rune(units[read]), 1
		if utf16.IsSurrogate(r) {
			pair := utf8.RuneError
			if read+1 < len(units) {
				pair = utf16.DecodeRune(r, rune(units[read+1]))
			}
			if pair != utf8.RuneError {
				n = 2
			}
			r = pair
		}
		size := utf8.RuneLen(r)
		if written+size > len(dst) {
			break
		}
		utf8.EncodeRune(dst[written:], r)
		read += n
		written += size
	}
	return read, written
}

// newTextDecoder returns the WHATWG TextDecoder constructor for UTF-8 (the only encoding
// scripts need; other labels throw a RangeError as Node does for unsupported ones). The
// stream option of decode is accepted and ignored: every call decodes a complete input.
func (l *jsLibrary) newTextDecoder() *goja.Object {
	vm := l.vm
	proto := vm.NewObject()
	ctor := vm.ToValue(func(call goja.ConstructorCall) *goja.Object {
		label := "utf-8"
		if a := call.Argument(0); !goja.IsUndefined(a) {
			label = strings.ToLower(strings.TrimSpace(a.String()))
		}
		switch label {
		case "utf-8", "utf8", "unicode-1-1-utf-8":
		default:
			panic(l.newError(l.rangeErrorCtor, "ERR_ENCODING_NOT_SUPPORTED", "The %q encoding is not supported", label))
		}
		fatal, ignoreBOM := false, false
		if o, ok := call.Argument(1).(*goja.Object); ok {
			if v := o.Get("fatal"); v != nil {
				fatal = v.ToBoolean()
			}
			if v := o.Get("ignoreBOM"); v != nil {
				ignoreBOM = v.ToBoolean()
			}
		}
		for name, v := range map[string]any{"encoding": "utf-8", "fatal": fatal, "ignoreBOM": ignoreBOM} {
			_ = call.This.DefineDataProperty(name, vm.ToValue(v), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE)
		}
		return nil
	}).ToObject(vm)
	l.setMethods(proto, map[string]any{
		"decode": func(call goja.FunctionCall) goja.Value {
			this := call.This.ToObject(vm)
			var b []byte
			if in := call.Argument(0); !goja.IsUndefined(in) {
				var ok bool
				if b, ok = l.bytesOf(in); !ok {
					panic(nodeerrors.NewTypeError(vm, nodeerrors.ErrCodeInvalidArgType, "The \"input\" argument must be an instance of ArrayBuffer or ArrayBufferView"))
				}
			}
			if v := this.Get("ignoreBOM"); v == nil || !v.ToBoolean() {
				b = bytes.TrimPrefix(b, []byte("\uFEFF"))
			}
			if v := this.Get("fatal"); v != nil && v.ToBoolean() && !utf8.Valid(b) {
				panic(nodeerrors.NewTypeError(vm, "ERR_ENCODING_INVALID_ENCODED_DATA", "The encoded data was not valid for encoding utf-8"))
			}
			return vm.ToValue(decodeUTF8(b))
		},
	})
	linkConstructor(ctor, proto)
	return ctor
}

// linkConstructor makes proto the prototype of objects ctor constructs.
func linkConstructor(ctor, proto *goja.Object) {
	_ = proto.DefineDataProperty("constructor", ctor, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	_ = ctor.DefineDataProperty("prototype", proto, goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_FALSE)
}
