// Package decode reads HTTP requests into the protos of the gRPC calls as
// the original service's clients expect: the keys of a JSON body match as
// Go's encoding/json matches them (the original decoded with it), and a
// value that cannot be read is reported with the path of its field and what
// it must be, in the contract's words rather than protobuf-go's or
// strconv's. The errors' texts are complete ("field: problem"): the gateway
// shows them to the client as they are.
package decode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Body reads one JSON object into msg with opts. Before protojson sees it,
// each key of the object (and of every nested message, in arrays too) is
// matched to a field as encoding/json does: the exact name first (the
// field's JSON name or its proto name, both of which protojson takes), else
// case-insensitively (userId, USERID, segmentslug). Unknown keys are
// dropped. When several keys name one field, the last one wins, as with
// encoding/json; a null after a value leaves that value, except that it
// empties a list. Values of well-known types (Timestamp, ...) are left to
// protojson as they are.
//
// Anything after the JSON value, invalid UTF-8 and a body that is not an
// object are errors. An empty body is the caller's business.
func Body(data []byte, msg proto.Message, opts protojson.UnmarshalOptions) error {
	if !utf8.Valid(data) {
		return errors.New("request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var value json.RawMessage
	if err := dec.Decode(&value); err != nil {
		return notJSON(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("request body has data after its JSON value")
	}
	if !isObject(value) {
		return fmt.Errorf("request body must be a JSON object, got %s", shown(value))
	}
	md := msg.ProtoReflect().Descriptor()
	canonical, err := canonicalMessage(value, md)
	if err != nil {
		return err
	}
	if err := opts.Unmarshal(canonical, msg); err != nil {
		if path, problem, found := firstProblem(canonical, md, ""); found {
			return fmt.Errorf("%s: %s", path, problem)
		}
		return fmt.Errorf("request body does not fit this call: %s", protojsonDetail(err))
	}
	return nil
}

func notJSON(err error) error {
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &syntax):
		return fmt.Errorf("request body is not valid JSON: %s (at byte %d)", syntax.Error(), syntax.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("request body is not valid JSON: it ends inside its value")
	default:
		return errors.New("request body is not valid JSON")
	}
}

// canonicalMessage rewrites a JSON object meant for a message of md: every
// key that names a field becomes the field's JSON name, once, with the value
// encoding/json would have kept; unknown keys are dropped. Anything else
// (not an object, a well-known type) is returned as it is, for protojson to
// accept or refuse.
func canonicalMessage(raw json.RawMessage, md protoreflect.MessageDescriptor) (json.RawMessage, error) {
	if isWellKnown(md) || !isObject(raw) {
		return raw, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // {
		return nil, notJSON(err)
	}
	var order []protoreflect.FieldDescriptor
	values := map[protoreflect.FieldNumber]json.RawMessage{}
	for dec.More() {
		token, err := dec.Token()
		if err != nil {
			return nil, notJSON(err)
		}
		key, _ := token.(string)
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, notJSON(err)
		}
		fd := fieldByKey(md, key)
		if fd == nil {
			continue
		}
		_, seen := values[fd.Number()]
		if !seen {
			order = append(order, fd)
		} else if isNull(value) && !fd.IsList() && !fd.IsMap() {
			continue
		}
		if values[fd.Number()], err = canonicalField(value, fd); err != nil {
			return nil, err
		}
	}
	var out bytes.Buffer
	out.WriteByte('{')
	for i, fd := range order {
		if i > 0 {
			out.WriteByte(',')
		}
		name, _ := json.Marshal(fd.JSONName())
		out.Write(name)
		out.WriteByte(':')
		out.Write(values[fd.Number()])
	}
	out.WriteByte('}')
	return out.Bytes(), nil
}

// canonicalField rewrites the value of fd: a message, or each message of a
// list. Maps and scalars are left as they are.
func canonicalField(value json.RawMessage, fd protoreflect.FieldDescriptor) (json.RawMessage, error) {
	switch {
	case fd.Message() == nil || fd.IsMap():
		return value, nil
	case !fd.IsList():
		return canonicalMessage(value, fd.Message())
	case isWellKnown(fd.Message()) || !isArray(value):
		return value, nil
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	if _, err := dec.Token(); err != nil { // [
		return nil, notJSON(err)
	}
	var out bytes.Buffer
	out.WriteByte('[')
	for i := 0; dec.More(); i++ {
		var item json.RawMessage
		if err := dec.Decode(&item); err != nil {
			return nil, notJSON(err)
		}
		item, err := canonicalMessage(item, fd.Message())
		if err != nil {
			return nil, err
		}
		if i > 0 {
			out.WriteByte(',')
		}
		out.Write(item)
	}
	out.WriteByte(']')
	return out.Bytes(), nil
}

// fieldByKey is the field a JSON key names, as encoding/json would pick it
// (with protojson's two exact names): nil for an unknown key. Where several
// fields match case-insensitively, the first in the message wins, as the
// first struct field does in encoding/json.
func fieldByKey(md protoreflect.MessageDescriptor, key string) protoreflect.FieldDescriptor {
	fields := md.Fields()
	if fd := fields.ByJSONName(key); fd != nil {
		return fd
	}
	if fd := fields.ByTextName(key); fd != nil {
		return fd
	}
	for i := 0; i < fields.Len(); i++ {
		if strings.EqualFold(fields.Get(i).JSONName(), key) {
			return fields.Get(i)
		}
	}
	for i := 0; i < fields.Len(); i++ {
		if strings.EqualFold(string(fields.Get(i).Name()), key) {
			return fields.Get(i)
		}
	}
	return nil
}

// firstProblem finds the first value of a canonical object that protojson
// refuses, trying each one alone, and returns its path below prefix and
// what it must be. Only called once protojson has refused the whole body.
func firstProblem(canonical json.RawMessage, md protoreflect.MessageDescriptor, prefix string) (path, problem string, found bool) {
	dec := json.NewDecoder(bytes.NewReader(canonical))
	if _, err := dec.Token(); err != nil {
		return "", "", false
	}
	for dec.More() {
		token, err := dec.Token()
		if err != nil {
			return "", "", false
		}
		key, _ := token.(string)
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return "", "", false
		}
		fd := md.Fields().ByJSONName(key)
		if fd == nil || isNull(value) {
			continue
		}
		path := key
		if prefix != "" {
			path = prefix + "." + key
		}
		if path, problem, found := valueProblem(md, fd, value, path); found {
			return path, problem, true
		}
	}
	return "", "", false
}

// valueProblem checks the value of fd, at path.
func valueProblem(md protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor, value json.RawMessage, path string) (string, string, bool) {
	nested := fd.Message() != nil && !fd.IsMap() && !isWellKnown(fd.Message())
	switch {
	case fd.IsMap():
		if refused(md, fd, value) {
			return path, "must be an object of " + kindName(fd.MapValue()) + ", got " + shown(value), true
		}
	case fd.IsList():
		if !isArray(value) {
			return path, "must be an array, got " + shown(value), true
		}
		if !nested && !refused(md, fd, value) {
			return "", "", false
		}
		dec := json.NewDecoder(bytes.NewReader(value))
		if _, err := dec.Token(); err != nil {
			return "", "", false
		}
		for i := 0; dec.More(); i++ {
			var item json.RawMessage
			if err := dec.Decode(&item); err != nil {
				return "", "", false
			}
			itemPath := fmt.Sprintf("%s[%d]", path, i)
			switch {
			case nested && !isObject(item):
				return itemPath, "must be an object, got " + shown(item), true
			case nested:
				if p, problem, found := firstProblem(item, fd.Message(), itemPath); found {
					return p, problem, true
				}
			case refused(md, fd, append(append(json.RawMessage{'['}, item...), ']')):
				return itemPath, valueMustBe(fd, item), true
			}
		}
	case nested:
		if !isObject(value) {
			return path, "must be an object, got " + shown(value), true
		}
		return firstProblem(value, fd.Message(), path)
	default:
		if refused(md, fd, value) {
			return path, valueMustBe(fd, value), true
		}
	}
	return "", "", false
}

// refused reports whether protojson refuses value as the only field of a
// message of md.
func refused(md protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor, value json.RawMessage) bool {
	name, _ := json.Marshal(fd.JSONName())
	object := append(append(append(append([]byte{'{'}, name...), ':'), value...), '}')
	return protojson.Unmarshal(object, newMessage(md)) != nil
}

// newMessage is an empty message of md: of its generated type when one is
// linked in (grpc-gateway's query parser sets well-known types as such),
// else dynamic.
func newMessage(md protoreflect.MessageDescriptor) proto.Message {
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName()); err == nil {
		return mt.New().Interface()
	}
	return dynamicpb.NewMessage(md)
}

// valueMustBe says what a JSON value of fd must be.
func valueMustBe(fd protoreflect.FieldDescriptor, value json.RawMessage) string {
	text, isString := string(value), false
	if len(value) > 0 && value[0] == '"' {
		var s string
		if json.Unmarshal(value, &s) == nil {
			text, isString = s, true
		}
	}
	if fd.Kind() == protoreflect.StringKind && isString {
		return "must be valid Unicode text, got " + shown(value) // a lone surrogate escape
	}
	return mustBe(fd, text, shown(value))
}

// isWellKnown: the google.protobuf messages, which protojson writes in
// their own forms (a Timestamp is a string).
func isWellKnown(md protoreflect.MessageDescriptor) bool {
	return md.FullName().Parent() == "google.protobuf"
}

func firstByte(raw []byte) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

func isObject(raw []byte) bool { return firstByte(raw) == '{' }
func isArray(raw []byte) bool  { return firstByte(raw) == '[' }
func isNull(raw []byte) bool   { return string(bytes.TrimSpace(raw)) == "null" }

// shown is a JSON value as written, cut to a readable length.
func shown(raw []byte) string {
	const limit = 40
	s := string(bytes.TrimSpace(raw))
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// protojsonDetail is protobuf-go's message without its "proto:" prefix
// (spelled with a random kind of space on purpose) and the position in a
// text the client never saw.
func protojsonDetail(err error) string {
	message := err.Error()
	for _, prefix := range []string{"proto: ", "proto:\u00a0", "syntax error "} {
		message = strings.TrimPrefix(message, prefix)
	}
	if strings.HasPrefix(message, "(line ") {
		if end := strings.Index(message, "): "); end >= 0 {
			message = message[end+3:]
		}
	}
	return message
}
