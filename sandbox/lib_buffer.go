package sandbox

import (
	"bytes"
	"fmt"

	"github.com/dop251/goja"
	"github.com/dop251/goja_nodejs/buffer"
	nodeerrors "github.com/dop251/goja_nodejs/errors"
)

// installBuffer builds Node's Buffer from goja_nodejs's module and completes it where that
// module falls short of what connector scripts use: its string encodings are case-sensitive
// and lack base64url, latin1/binary, ascii and utf16le (an unknown encoding even decodes
// silently as UTF-8), and it has no byteLength, isBuffer, isEncoding, compare or toJSON.
// The replaced functions handle strings and encodings here and delegate everything else
// (arrays, ArrayBuffers with offsets, Buffers) to the originals. It defines the Buffer
// global, which goja_nodejs's own helpers look up.
//
// Every path that allocates a size the script chose (alloc's size, from's array-like
// length, concat's totalLength) is vetted by l.checkAlloc before the original runs.
func (l *jsLibrary) installBuffer(define func(name string, v goja.Value)) (*goja.Object, error) {
	vm := l.vm
	ctor, ok := loadNodeModule(vm, buffer.Require).Get("Buffer").(*goja.Object)
	if !ok {
		return nil, fmt.Errorf("loading buffer module: no Buffer export")
	}
	define("Buffer", ctor)
	api := buffer.GetApi(vm)
	if api == nil {
		return nil, fmt.Errorf("loading buffer module: no api")
	}
	l.wrapBytes = api.WrapBytes

	nativeFrom, ok1 := goja.AssertFunction(ctor.Get("from"))
	nativeAlloc, ok2 := goja.AssertFunction(ctor.Get("alloc"))
	proto, ok3 := ctor.Get("prototype").(*goja.Object)
	nativeConcat, ok4 := goja.AssertFunction(ctor.Get("concat"))
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil, fmt.Errorf("loading buffer module: missing from, alloc, concat or prototype")
	}

	alloc := func(call goja.FunctionCall) goja.Value {
		if size := call.Argument(0); goja.IsNumber(size) && !l.checkAlloc(size.ToFloat(), "Buffer.alloc") {
			return goja.Undefined()
		}
		fill := call.Argument(1)
		if !goja.IsString(fill) {
			return must(nativeAlloc(call.This, call.Arguments...))
		}
		// Let the original validate the size, then fill with the encoded pattern.
		size := len(l.thisBytes(must(nativeAlloc(call.This, call.Argument(0)))))
		pattern := encodeString(fill, l.encodingArg(call.Argument(2), encUTF8))
		b := make([]byte, size)
		if len(pattern) > 0 {
			for i := 0; i < size; i += copy(b[i:], pattern) {
			}
		}
		return l.wrapBytes(b)
	}
	l.setMethods(ctor, map[string]any{
		"from": func(call goja.FunctionCall) goja.Value {
			if s := call.Argument(0); goja.IsString(s) {
				return l.wrapBytes(encodeString(s, l.encodingArg(call.Argument(1), encUTF8)))
			}
			if o, ok := call.Argument(0).(*goja.Object); ok {
				if _, isBytes := l.bytesOf(o); !isBytes {
					// An array-like is copied element by element into length bytes.
					if n := o.Get("length"); n != nil && !l.checkAlloc(n.ToFloat(), "Buffer.from") {
						return goja.Undefined()
					}
				}
			}
			return must(nativeFrom(call.This, call.Arguments...))
		},
		"concat": func(call goja.FunctionCall) goja.Value {
			if n := call.Argument(1); goja.IsNumber(n) && !l.checkAlloc(n.ToFloat(), "Buffer.concat") {
				return goja.Undefined()
			}
			return must(nativeConcat(call.This, call.Arguments...))
		},
		"alloc":       alloc,
		"allocUnsafe": alloc, // zero-filled: nothing uninitialized reaches a script
		"byteLength": func(call goja.FunctionCall) goja.Value {
			v := call.Argument(0)
			if goja.IsString(v) {
				return vm.ToValue(len(encodeString(v, l.encodingArg(call.Argument(1), encUTF8))))
			}
			if b, ok := l.bytesOf(v); ok {
				return vm.ToValue(len(b))
			}
			panic(nodeerrors.NewTypeError(vm, nodeerrors.ErrCodeInvalidArgType, "The \"string\" argument must be of type string or an instance of Buffer or ArrayBuffer"))
		},
		"isBuffer": func(v goja.Value) bool {
			return vm.InstanceOf(v, ctor)
		},
		"isEncoding": func(v goja.Value) bool {
			if !goja.IsString(v) {
				return false
			}
			_, ok := parseEncoding(v.String())
			return ok
		},
		"compare": func(call goja.FunctionCall) goja.Value {
			return vm.ToValue(bytes.Compare(l.bufferArg(call.Argument(0), "buf1"), l.bufferArg(call.Argument(1), "buf2")))
		},
	})
	l.setMethods(proto, map[string]any{
		"toString": func(call goja.FunctionCall) goja.Value {
			b := l.thisBytes(call.This)
			enc := l.encodingArg(call.Argument(0), encUTF8)
			start, end := clampRange(len(b), call.Argument(1), call.Argument(2))
			return vm.ToValue(decodeBytes(b[start:end], enc))
		},
		"toJSON": func(call goja.FunctionCall) goja.Value {
			b := l.thisBytes(call.This)
			data := make([]any, len(b))
			for i, c := range b {
				data[i] = int64(c)
			}
			res := vm.NewObject()
			_ = res.Set("type", "Buffer")
			_ = res.Set("data", vm.NewArray(data...))
			return res
		},
		"compare": func(call goja.FunctionCall) goja.Value {
			return vm.ToValue(bytes.Compare(l.thisBytes(call.This), l.bufferArg(call.Argument(0), "target")))
		},
		// Node's slice is a view, like subarray (Uint8Array's slice copies).
		"slice": func(call goja.FunctionCall) goja.Value {
			this := call.This.ToObject(vm)
			sub, ok := goja.AssertFunction(this.Get("subarray"))
			if !ok {
				panic(vm.NewTypeError("subarray is not a function"))
			}
			return must(sub(this, call.Arguments...))
		},
	})
	return ctor, nil
}

// thisBytes returns the bytes of a method's receiver, throwing a TypeError for a receiver
// that holds none.
func (l *jsLibrary) thisBytes(this goja.Value) []byte {
	if b, ok := l.bytesOf(this); ok {
		return b
	}
	panic(nodeerrors.NewTypeError(l.vm, nodeerrors.ErrCodeInvalidArgType, "The \"this\" value must be an instance of Buffer or Uint8Array"))
}

// bufferArg returns the bytes of a binary argument, throwing Node's TypeError otherwise.
func (l *jsLibrary) bufferArg(v goja.Value, name string) []byte {
	if b, ok := l.bytesOf(v); ok {
		return b
	}
	panic(nodeerrors.NewTypeError(l.vm, nodeerrors.ErrCodeInvalidArgType, "The %q argument must be an instance of Buffer, TypedArray, DataView or ArrayBuffer", name))
}

// clampRange applies toString's start and end arguments the way Node does: integers,
// clamped to [0, n], undefined meaning the whole buffer and an empty range when start >= end.
func clampRange(n int, startV, endV goja.Value) (start, end int) {
	start, end = 0, n
	if !goja.IsUndefined(startV) {
		if f := startV.ToFloat(); f > 0 {
			start = int(min(f, float64(n)))
		}
	}
	if !goja.IsUndefined(endV) {
		f := endV.ToFloat()
		switch {
		case f != f || f <= 0: // NaN included
			end = 0
		case f < float64(n):
			end = int(f)
		}
	}
	if start > end {
		start = end
	}
	return start, end
}

// must returns v or rethrows err as the JavaScript exception it is.
func must(v goja.Value, err error) goja.Value {
	if err != nil {
		panic(err)
	}
	return v
}
