package admission

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
)

// Diff is a JSON patch (RFC 6902) that turns the JSON object a into b. Both are the
// same typed object marshalled by encoding/json, before and after the injection, so
// the patch carries the injection and nothing a round trip through our types changes
// (a field our API version does not know stays untouched in the apiserver's copy).
//
// It replaces the framework's general diff (gomodules jsonpatch, which decodes both
// documents whole and aligns arrays index by index): an init container inserted first
// shifts every element after it, which that diff turns into field-by-field rewrites of
// the pod author's containers (25 operations for a pod with one init container and two
// env vars; measured: 15 % of the webhook's CPU and 40 % of the apiserver's in calling
// it). Diff skips equal subtrees by comparing their bytes, recurses only into objects
// that differ, and aligns an array on its common prefix and suffix, so an insertion
// is one "add" of the new element.
func Diff(a, b []byte) ([]jsonpatch.Operation, error) {
	// Validated once here, the documents are then split level by level without a
	// copy or a second check (split): each json.Unmarshal into raw members scanned and
	// copied every subtree again, once per level it lay under.
	if kind(a) != '{' || kind(b) != '{' || !json.Valid(a) || !json.Valid(b) {
		return nil, fmt.Errorf("diffing: both documents must be valid JSON objects")
	}
	var d differ
	if err := d.value("", a, b); err != nil {
		return nil, err
	}
	return d.ops, nil
}

type differ struct{ ops []jsonpatch.Operation }

// kind is the first byte of a JSON value ('{', '[', or that of a scalar), 0 if empty.
func kind(v []byte) byte {
	v = bytes.TrimLeft(v, " \t\r\n")
	if len(v) == 0 {
		return 0
	}
	return v[0]
}

func (d *differ) emit(op, path string, v json.RawMessage) {
	o := jsonpatch.Operation{Operation: op, Path: path}
	if v != nil {
		o.Value = v
	}
	d.ops = append(d.ops, o)
}

func (d *differ) value(path string, a, b json.RawMessage) error {
	if bytes.Equal(a, b) {
		return nil
	}
	switch ka, kb := kind(a), kind(b); {
	case ka == '{' && kb == '{':
		return d.object(path, a, b)
	case ka == '[' && kb == '[':
		return d.array(path, a, b)
	}
	d.emit("replace", path, b)
	return nil
}

func (d *differ) object(path string, a, b json.RawMessage) error {
	ma, err := members(a)
	if err != nil {
		return fmt.Errorf("diffing %q: %w", path, err)
	}
	mb, err := members(b)
	if err != nil {
		return fmt.Errorf("diffing %q: %w", path, err)
	}
	// Sorted keys: the same documents always give the same patch.
	for _, k := range sortedKeys(ma) {
		if _, ok := mb[k]; !ok {
			d.emit("remove", path+"/"+escape(k), nil)
		}
	}
	for _, k := range sortedKeys(mb) {
		va, ok := ma[k]
		if !ok {
			d.emit("add", path+"/"+escape(k), mb[k])
			continue
		}
		if err := d.value(path+"/"+escape(k), va, mb[k]); err != nil {
			return err
		}
	}
	return nil
}

// array aligns a and b on their longest common prefix and suffix; the differing middles
// are diffed element by element, and what one has beyond the other is added or removed
// at its place.
func (d *differ) array(path string, a, b json.RawMessage) error {
	la, lb := elements(a), elements(b)
	p := 0
	for p < len(la) && p < len(lb) && bytes.Equal(la[p], lb[p]) {
		p++
	}
	s := 0
	for s < len(la)-p && s < len(lb)-p && bytes.Equal(la[len(la)-1-s], lb[len(lb)-1-s]) {
		s++
	}
	ma, mb := la[p:len(la)-s], lb[p:len(lb)-s]
	m := min(len(ma), len(mb))
	for i := range m {
		if err := d.value(path+"/"+strconv.Itoa(p+i), ma[i], mb[i]); err != nil {
			return err
		}
	}
	for i := m; i < len(mb); i++ {
		d.emit("add", path+"/"+strconv.Itoa(p+i), mb[i])
	}
	for i := m; i < len(ma); i++ {
		d.emit("remove", path+"/"+strconv.Itoa(p+m), nil)
	}
	return nil
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// escape is k as a JSON pointer reference token (RFC 6901): annotation keys hold '/'.
var escape = strings.NewReplacer("~", "~0", "/", "~1").Replace
