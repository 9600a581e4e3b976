package decode

import (
	"math"
	"math/big"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// mustBe says what a value of fd must be, for a value that could not be
// read: text is the value (a JSON string's contents, or the JSON literal;
// a query value), shown how to show it to the client.
func mustBe(fd protoreflect.FieldDescriptor, text, shown string) string {
	if md := fd.Message(); md != nil {
		switch md.FullName() {
		case "google.protobuf.Timestamp":
			return `must be an RFC 3339 time from 0001 to 9999 such as "2030-01-02T03:04:05Z", got ` + shown
		case "google.protobuf.Duration":
			return `must be a duration in seconds such as "1.5s", got ` + shown
		}
		if value := md.Fields().ByName("value"); value != nil && isWellKnown(md) { // wrappers
			return mustBe(value, text, shown)
		}
		return "must be " + kindName(fd) + ", got " + shown
	}
	if low, high, ok := integerRange(fd.Kind()); ok {
		if n, isInt := integer(text); isInt && (n.Cmp(low) < 0 || n.Cmp(high) > 0) {
			return "must be an integer from " + low.String() + " to " + high.String() + ", got " + shown
		}
		return "must be an integer, got " + shown
	}
	switch fd.Kind() {
	case protoreflect.DoubleKind, protoreflect.FloatKind:
		if _, err := strconv.ParseFloat(strings.TrimSpace(text), 64); err != nil && isNumber(text) {
			return "must be a number no larger than " + strconv.FormatFloat(maxFloat(fd.Kind()), 'g', 2, 64) + " in magnitude, got " + shown
		}
	case protoreflect.EnumKind:
		values := fd.Enum().Values()
		names := make([]string, 0, values.Len())
		for i := 0; i < values.Len(); i++ {
			names = append(names, strconv.Quote(string(values.Get(i).Name())))
		}
		return "must be one of " + strings.Join(names, ", ") + ", got " + shown
	}
	return "must be " + kindName(fd) + ", got " + shown
}

// kindName names what a value of fd is, with its article.
func kindName(fd protoreflect.FieldDescriptor) string {
	if md := fd.Message(); md != nil && !fd.IsMap() {
		switch md.FullName() {
		case "google.protobuf.Timestamp":
			return "an RFC 3339 time"
		case "google.protobuf.Duration":
			return "a duration"
		}
		return "an object"
	}
	if _, _, ok := integerRange(fd.Kind()); ok {
		return "an integer"
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return "true or false"
	case protoreflect.DoubleKind, protoreflect.FloatKind:
		return "a number"
	case protoreflect.StringKind:
		return "a string"
	case protoreflect.BytesKind:
		return "base64 text"
	case protoreflect.EnumKind:
		return "a name of " + string(fd.Enum().Name())
	}
	return "a " + fd.Kind().String()
}

// integerRange is the range of an integer kind; ok is false for the others.
func integerRange(kind protoreflect.Kind) (low, high *big.Int, ok bool) {
	switch kind {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return big.NewInt(math.MinInt32), big.NewInt(math.MaxInt32), true
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return big.NewInt(math.MinInt64), big.NewInt(math.MaxInt64), true
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return big.NewInt(0), big.NewInt(math.MaxUint32), true
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return big.NewInt(0), new(big.Int).SetUint64(math.MaxUint64), true
	}
	return nil, nil, false
}

func maxFloat(kind protoreflect.Kind) float64 {
	if kind == protoreflect.FloatKind {
		return math.MaxFloat32
	}
	return math.MaxFloat64
}

// integer parses text as a whole number written as JSON or protojson write
// it (1, -5, 1e3, 2.0).
func integer(text string) (*big.Int, bool) {
	if !isNumber(text) {
		return nil, false
	}
	f, _, err := big.ParseFloat(strings.TrimSpace(text), 10, 0, big.ToNearestEven)
	if err != nil || !f.IsInt() {
		return nil, false
	}
	n, _ := f.Int(nil)
	return n, true
}

// isNumber: text is a JSON number (the only numbers protojson reads, as
// literals or in strings; besides, a query value is parsed as such).
func isNumber(text string) bool {
	text = strings.TrimSpace(text)
	if text == "" {
		return false
	}
	for i, c := range text {
		switch {
		case c >= '0' && c <= '9', c == '.', c == 'e', c == 'E', c == '+' && i > 0:
		case c == '-' && (i == 0 || text[i-1] == 'e' || text[i-1] == 'E'):
		default:
			return false
		}
	}
	_, _, err := big.ParseFloat(text, 10, 0, big.ToNearestEven)
	return err == nil
}
