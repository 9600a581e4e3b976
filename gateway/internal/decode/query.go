package decode

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// QueryParser is grpc-gateway's query parser (the same values are read
// the same way) with errors that name the parameter and say what it must
// be, instead of strconv's words: `month: must be an integer, got ""`.
type QueryParser struct{ runtime.DefaultQueryParser }

// Parse populates msg from values.
func (p *QueryParser) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	if filter == nil {
		filter = utilities.NewDoubleArray(nil)
	}
	err := p.DefaultQueryParser.Parse(msg, values, filter)
	if err == nil {
		return nil
	}
	if explained := explainQuery(msg.ProtoReflect().Descriptor(), values, filter); explained != nil {
		return explained
	}
	return fmt.Errorf("cannot read the query: %s", err)
}

// Query reads a query string's values into msg (no field is bound
// elsewhere), with QueryParser's errors.
func Query(msg proto.Message, values url.Values) error {
	return (&QueryParser{}).Parse(msg, values, nil)
}

// mapKeySyntax is grpc-gateway's field[key]=value.
var mapKeySyntax = regexp.MustCompile(`^(.*)\[(.*)\]$`)

// explainQuery finds the first parameter, in sorted order, that the default
// parser refuses and says why; nil if it finds none.
func explainQuery(md protoreflect.MessageDescriptor, values url.Values, filter *utilities.DoubleArray) error {
	keys := make([]string, 0, len(values))
	for key := range values {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	named := map[protoreflect.FullName]string{} // field -> the first key that set it
	for _, key := range keys {
		path, hasMapKey := key, false
		if match := mapKeySyntax.FindStringSubmatch(key); match != nil {
			path, hasMapKey = match[1], true
		}
		fd, names, problem := queryField(md, strings.Split(path, "."))
		switch {
		case problem != "":
			return fmt.Errorf("%s: %s", key, problem)
		case fd == nil || filter.HasCommonPrefix(names):
			continue // unknown parameters are ignored
		case hasMapKey && !fd.IsMap():
			return fmt.Errorf("%s: %s takes no [key]", key, path)
		case hasMapKey:
			continue
		}
		if first, ok := named[fd.FullName()]; ok {
			return fmt.Errorf("%s: the same parameter as %s; give it once", key, first)
		}
		named[fd.FullName()] = key
		if len(values[key]) > 1 && !fd.IsList() {
			return fmt.Errorf("%s: given %d times; give it once", key, len(values[key]))
		}
		for _, value := range values[key] {
			fresh := newMessage(md)
			if err := runtime.PopulateFieldFromPath(fresh, path, value); err != nil {
				return fmt.Errorf("%s: %s", key, mustBe(fd, value, strconv.Quote(value)))
			}
		}
	}
	return nil
}

// queryField resolves a parameter's dotted path as the default parser does
// (each part a proto or JSON name): the field, nil if unknown, and a
// problem if the path goes through a field that has no fields.
func queryField(md protoreflect.MessageDescriptor, parts []string) (protoreflect.FieldDescriptor, []string, string) {
	var fd protoreflect.FieldDescriptor
	names := make([]string, 0, len(parts))
	for i, part := range parts {
		if i > 0 {
			if fd.Message() == nil || fd.IsList() || fd.IsMap() {
				return nil, nil, strings.Join(parts[:i], ".") + " has no fields"
			}
			md = fd.Message()
		}
		if fd = md.Fields().ByTextName(part); fd == nil {
			if fd = md.Fields().ByJSONName(part); fd == nil {
				return nil, nil, ""
			}
		}
		names = append(names, string(fd.Name()))
	}
	return fd, names, ""
}
