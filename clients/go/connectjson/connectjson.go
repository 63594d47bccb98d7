// Package connectjson is the Connect JSON codec sessiond speaks: protojson
// with the proto field names (snake_case: "access_token", "session_id"), the
// naming the HTTP/JSON routes (/auth/*) use, so one JSON convention holds
// across HTTP and Connect.
//
// Requests are read with either spelling (protojson accepts the proto name
// and the lowerCamelCase JSON name) and unknown fields are ignored, so
// clients written against Connect's default camelCase keep working; answers
// are written in snake_case. Other protojson rules are unchanged: 64-bit
// integers are strings, enums are their names, timestamps RFC 3339.
//
// Servers and Go clients add it with connect.WithCodec for both of
// Connect's JSON content types: Option() does that.
package connectjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

var (
	marshal   = protojson.MarshalOptions{UseProtoNames: true}
	unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}
)

// Option replaces Connect's JSON codecs ("json" and
// "json; charset=utf-8") with snake_case ones. It is a connect.Option: use
// it on handlers and clients alike.
func Option() connect.Option {
	return connect.WithOptions(connect.WithCodec(codec{"json"}), connect.WithCodec(codec{"json; charset=utf-8"}))
}

// Marshal writes m as sessiond's Connect JSON (snake_case field names).
func Marshal(m proto.Message) ([]byte, error) { return marshal.Marshal(m) }

// codec is a connect.Codec for one JSON content type.
type codec struct{ name string }

// Name is the codec's content subtype.
func (c codec) Name() string { return c.name }

// Marshal writes a proto message as snake_case JSON.
func (c codec) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("connectjson: %T is not a proto message", v)
	}
	return marshal.Marshal(m)
}

// MarshalAppend appends v's JSON to dst.
func (c codec) MarshalAppend(dst []byte, v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("connectjson: %T is not a proto message", v)
	}
	return marshal.MarshalAppend(dst, m)
}

// MarshalStable writes v's JSON without insignificant whitespace (protojson
// varies it), for GET request URLs.
func (c codec) MarshalStable(v any) ([]byte, error) {
	b, err := c.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// IsBinary is false: JSON is text.
func (c codec) IsBinary() bool { return false }

// Unmarshal reads either field spelling and ignores unknown fields.
func (c codec) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("connectjson: %T is not a proto message", v)
	}
	if len(data) == 0 {
		return errors.New("connectjson: zero-length payload is not a valid JSON object")
	}
	if err := unmarshal.Unmarshal(data, m); err != nil {
		return fmt.Errorf("connectjson: unmarshal into %T: %w", v, err)
	}
	return nil
}
