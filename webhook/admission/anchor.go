package admission

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
)

// Anchor rewrites ops, a Diff between the typed pod's JSON before and after the
// injection, so that they apply to raw, the object as submitted. The two differ where
// the submitted JSON leaves out what our types always write: a pod without "spec" or
// with "metadata": null marshals as "spec":{"containers":null}, so Diff adds
// /spec/initContainers to a spec the submitted object does not have, and the apiserver
// refuses the patch (it applies it to the object it sent, not to our round trip).
//
// An "add" whose parent is missing or not a container in raw, and a "replace" whose
// target is missing, become one "add" (a "replace" inside an array) of after's value at
// the first level raw lacks; a "remove" of something raw lacks is dropped. Operations
// under a level already added whole are dropped. An object that round-trips through our
// types, as the apiserver's does, keeps its operations unchanged.
func Anchor(raw, after []byte, ops []jsonpatch.Operation) ([]jsonpatch.Operation, error) {
	if err := objects("anchoring", raw, after); err != nil {
		return nil, err
	}
	return anchor(raw, after, ops)
}

// anchor is Anchor on documents objects has validated.
func anchor(raw, after []byte, ops []jsonpatch.Operation) ([]jsonpatch.Operation, error) {
	src, dst := newTree(raw), newTree(after)
	out := ops[:0:0]
	var whole []string // pointers added whole, in order
	for _, op := range ops {
		toks, err := splitPointer(op.Path)
		if err != nil {
			return nil, err
		}
		if len(toks) == 0 {
			return nil, fmt.Errorf("anchoring %s of the whole document", op.Operation)
		}
		if under(op.Path, whole) {
			continue
		}
		switch op.Operation {
		case "remove":
			if _, ok := src.at(toks); ok {
				out = append(out, op)
			}
			continue
		case "add":
			if src.canHold(toks) {
				out = append(out, op)
				continue
			}
		case "replace":
			if _, ok := src.at(toks); ok {
				out = append(out, op)
				continue
			}
		default:
			return nil, fmt.Errorf("anchoring %q: unexpected operation %q", op.Path, op.Operation)
		}
		// The deepest level raw has as a container on the way to the target.
		j := 0
		for j < len(toks)-1 {
			v, ok := src.at(toks[:j+1])
			if !ok || (kind(v) != '{' && kind(v) != '[') {
				break
			}
			j++
		}
		target := toks[:j+1]
		path := joinPointer(target)
		v, ok := dst.at(target)
		if !ok {
			return nil, fmt.Errorf("anchoring %q: %q is not in the patched object", op.Path, path)
		}
		name := "add"
		if parent, _ := src.at(toks[:j]); kind(parent) == '[' {
			if _, ok := src.at(target); !ok {
				return nil, fmt.Errorf("anchoring %q: %q is beyond the submitted array", op.Path, path)
			}
			name = "replace" // an "add" into an array inserts
		}
		out = append(out, jsonpatch.Operation{Operation: name, Path: path, Value: v})
		whole = append(whole, path)
	}
	return out, nil
}

// under reports whether pointer p is one of prefixes or below one.
func under(p string, prefixes []string) bool {
	for _, q := range prefixes {
		if p == q || strings.HasPrefix(p, q+"/") {
			return true
		}
	}
	return false
}

// splitPointer is the reference tokens of JSON pointer p (RFC 6901), unescaped.
func splitPointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if p[0] != '/' {
		return nil, fmt.Errorf("JSON pointer %q does not start with /", p)
	}
	toks := strings.Split(p[1:], "/")
	for i, t := range toks {
		toks[i] = unescape(t)
	}
	return toks, nil
}

// unescape is the reference token t unescaped (RFC 6901).
func unescape(t string) string {
	if !strings.Contains(t, "~") {
		return t
	}
	return unescaper.Replace(t)
}

var unescaper = strings.NewReplacer("~1", "/", "~0", "~")

func joinPointer(toks []string) string {
	var b strings.Builder
	for _, t := range toks {
		b.WriteByte('/')
		b.WriteString(escape(t))
	}
	return b.String()
}

// tree looks up JSON pointers in one validated document, splitting each container it
// passes once (split: sub-slices of the document, no copy).
type tree struct {
	root json.RawMessage
	objs map[string]map[string]json.RawMessage
	arrs map[string][]json.RawMessage
}

func newTree(doc []byte) *tree {
	return &tree{root: doc, objs: map[string]map[string]json.RawMessage{}, arrs: map[string][]json.RawMessage{}}
}

// at is the value at toks, and whether the document has it.
func (t *tree) at(toks []string) (json.RawMessage, bool) {
	v := t.root
	key := ""
	for _, tok := range toks {
		switch kind(v) {
		case '{':
			m, ok := t.objs[key]
			if !ok {
				var err error
				if m, err = members(v); err != nil {
					return nil, false
				}
				t.objs[key] = m
			}
			if v, ok = m[tok]; !ok {
				return nil, false
			}
		case '[':
			l, ok := t.arrs[key]
			if !ok {
				l = elements(v)
				t.arrs[key] = l
			}
			n, err := arrayIndex(tok)
			if err != nil || n >= len(l) {
				return nil, false
			}
			v = l[n]
		default:
			return nil, false
		}
		key += "/" + escape(tok)
	}
	return v, true
}

// canHold reports whether an "add" at toks applies: its parent is an object or an
// array. Diff's additions to an array come in order after its existing elements, each
// at the index the ones before it made valid, and raw's arrays are as long as the typed
// ones (a null element decodes as a zero one).
func (t *tree) canHold(toks []string) bool {
	parent, ok := t.at(toks[:len(toks)-1])
	if !ok {
		return false
	}
	switch kind(parent) {
	case '{':
		return true
	case '[':
		_, err := arrayIndex(toks[len(toks)-1])
		return err == nil
	}
	return false
}

// arrayIndex is an array reference token as RFC 6901 spells one: digits, no leading 0.
func arrayIndex(tok string) (int, error) {
	if tok == "" || len(tok) > 9 || (len(tok) > 1 && tok[0] == '0') || strings.Trim(tok, "0123456789") != "" {
		return 0, fmt.Errorf("array index %q", tok)
	}
	return strconv.Atoi(tok)
}
