package notifier

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// checkKeys walks the JSON document against the Go type t and reports the
// first key that encoding/json would accept but the contract does not: a key
// that is unknown, spelt in another case ("ID" for "id"), or repeated. It
// names the key by its full path ("incident.severity"). Values are left to
// the decoder.
func checkKeys(b []byte, t reflect.Type) *FieldError {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return walkValue(dec, t, "")
}

var timeType = reflect.TypeOf(time.Time{})

func walkValue(dec *json.Decoder, t reflect.Type, path string) *FieldError {
	tok, err := dec.Token()
	if err != nil {
		return nil // syntax errors are the decoder's to report
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch delim {
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if fe := walkValue(dec, elem, fmt.Sprintf("%s[%d]", path, i)); fe != nil {
				return fe
			}
		}
		_, _ = dec.Token()
	case '{':
		seen := map[string]bool{}
		for dec.More() {
			keyTok, err := dec.Token()
			if err != nil {
				return nil
			}
			key, _ := keyTok.(string)
			child := joinPath(path, key)
			if t != nil && t.Kind() == reflect.Map {
				if seen[key] {
					return &FieldError{Field: child, Problem: "given twice"}
				}
				seen[key] = true
				if fe := walkValue(dec, t.Elem(), child); fe != nil {
					return fe
				}
				continue
			}
			var ft reflect.Type
			if t != nil && t.Kind() == reflect.Struct && t != timeType {
				var found bool
				ft, found = fieldByTag(t, key)
				if !found {
					return &FieldError{Field: child, Problem: "unknown field"}
				}
			}
			if seen[key] {
				return &FieldError{Field: child, Problem: "given twice"}
			}
			seen[key] = true
			if fe := walkValue(dec, ft, child); fe != nil {
				return fe
			}
		}
		_, _ = dec.Token()
	}
	return nil
}

// fieldByTag finds the struct field whose JSON name is exactly key.
func fieldByTag(t reflect.Type, key string) (reflect.Type, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		if name == key && name != "-" {
			return f.Type, true
		}
	}
	return nil, false
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
