package admission

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// The splitting of a JSON document Diff has validated: an object's members and an
// array's elements as sub-slices of the document, found by one pass over its bytes
// that tracks strings and nesting only. On bytes that are not valid JSON the parts are
// wrong but every index stays in bounds.

// members is the JSON object v's members by name (the last of a repeated name, as
// encoding/json decodes it), each value a sub-slice of v.
func members(v []byte) (map[string]json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	var err error
	each(v, '{', func(part []byte) {
		k := end(part, 0)
		name, ok := unquote(part[:k])
		if !ok && err == nil {
			err = fmt.Errorf("member name %s: not a JSON string", part[:k])
		}
		i := skipSpace(part, k)
		if i < len(part) && part[i] == ':' {
			i = skipSpace(part, i+1)
		}
		m[name] = part[i:]
	})
	return m, err
}

// elements is the JSON array v's elements, each a sub-slice of v.
func elements(v []byte) []json.RawMessage {
	var l []json.RawMessage
	each(v, '[', func(part []byte) { l = append(l, part) })
	return l
}

// each calls fn with every comma-separated part at the top level of the object or
// array v (open is '{' or '['), leading and trailing blanks trimmed.
func each(v []byte, open byte, fn func(part []byte)) {
	i := skipSpace(v, 0)
	if i >= len(v) || v[i] != open {
		return
	}
	i = skipSpace(v, i+1)
	for i < len(v) && v[i] != '}' && v[i] != ']' {
		start := i
		if open == '{' {
			i = skipSpace(v, end(v, i))
			if i < len(v) && v[i] == ':' {
				i = skipSpace(v, i+1)
			}
		}
		if i >= len(v) {
			return
		}
		i = end(v, i)
		fn(v[start:i])
		i = skipSpace(v, i)
		if i < len(v) && v[i] == ',' {
			i = skipSpace(v, i+1)
		}
	}
}

// end is the index just past the JSON value that starts at v[i] (i < len(v)).
func end(v []byte, i int) int {
	switch v[i] {
	case '"':
		return endString(v, i)
	case '{', '[':
		depth := 0
		for ; i < len(v); i++ {
			switch v[i] {
			case '"':
				i = endString(v, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(v)
	}
	// A number, true, false or null: up to the next delimiter; at least one byte, so
	// that a caller walking bytes that are not JSON still moves on.
	j := i + 1
	for j < len(v) && strings.IndexByte(",:}] \t\r\n", v[j]) < 0 {
		j++
	}
	return j
}

// endString is the index just past the JSON string that starts at v[i].
func endString(v []byte, i int) int {
	for i++; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(v)
}

func skipSpace(v []byte, i int) int {
	for i < len(v) && (v[i] == ' ' || v[i] == '\t' || v[i] == '\n' || v[i] == '\r') {
		i++
	}
	return i
}

// unquote is the JSON string s decoded as encoding/json does: without escapes and in
// valid UTF-8, a copy of its bytes; otherwise each invalid byte becomes U+FFFD.
func unquote(s []byte) (string, bool) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", false
	}
	if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
		return string(s[1 : len(s)-1]), true
	}
	var out string
	if err := json.Unmarshal(s, &out); err != nil {
		return "", false
	}
	return out, true
}
