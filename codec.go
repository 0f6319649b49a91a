package kv

import (
	"encoding/json"
	"reflect"
	"unsafe"
)

// Codec turns values of type V into stored bytes and back. A Codec must be
// safe for concurrent use.
type Codec[V any] interface {
	// Encode returns the stored form of v. The Map does not keep the result
	// past the call that stores it.
	Encode(v V) ([]byte, error)
	// Decode returns the value whose stored form is data. Decode owns data:
	// nothing else reads or writes it afterwards, so the value may share it.
	Decode(data []byte) (V, error)
}

// JSON returns a Codec that stores values as JSON with encoding/json.
func JSON[V any]() Codec[V] { return jsonCodec[V]{} }

// Raw returns a Codec that stores a string or byte slice as its bytes, as
// BaseMap stores strings. It is the default for such V.
func Raw[V ~string | ~[]byte]() Codec[V] { return rawCodec[V]{} }

type jsonCodec[V any] struct{}

func (jsonCodec[V]) Encode(v V) ([]byte, error) { return json.Marshal(v) }

func (jsonCodec[V]) Decode(data []byte) (V, error) {
	var v V
	err := json.Unmarshal(data, &v)
	return v, err
}

type rawCodec[V ~string | ~[]byte] struct{}

func (rawCodec[V]) Encode(v V) ([]byte, error) { return []byte(v), nil }

// Decode converts without copying: Decode owns data, and nothing writes to
// it afterwards.
func (rawCodec[V]) Decode(data []byte) (V, error) {
	var v V
	if p, ok := any(&v).(*string); ok {
		*p = unsafe.String(unsafe.SliceData(data), len(data))
		return v, nil
	}
	return V(data), nil
}

// defaultCodec returns the raw codec when V's underlying type is string or
// []byte, and JSON otherwise.
func defaultCodec[V any]() Codec[V] {
	switch any(*new(V)).(type) {
	case string:
		return any(rawCodec[string]{}).(Codec[V])
	case []byte:
		return any(rawCodec[[]byte]{}).(Codec[V])
	}
	t := reflect.TypeFor[V]()
	if t.Kind() == reflect.String || t.Kind() == reflect.Slice && t.Elem() == reflect.TypeFor[byte]() {
		return reflectCodec[V]{}
	}
	return jsonCodec[V]{}
}

// reflectCodec is the raw codec of a named string or byte-slice type: the
// conversion to and from []byte.
type reflectCodec[V any] struct{}

func (reflectCodec[V]) Encode(v V) ([]byte, error) {
	return reflect.ValueOf(v).Convert(reflect.TypeFor[[]byte]()).Bytes(), nil
}

func (reflectCodec[V]) Decode(data []byte) (V, error) {
	return reflect.ValueOf(data).Convert(reflect.TypeFor[V]()).Interface().(V), nil
}
