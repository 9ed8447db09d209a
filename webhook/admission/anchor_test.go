package admission_test

import (
	"encoding/json"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	gomodules "gomodules.xyz/jsonpatch/v2"

	"github.com/smartbackup/smartbackup/webhook/admission"
)

// TestAnchor: a patch diffed between our types' JSON before and after applies to the
// object as submitted, which may leave out what our types always write.
func TestAnchor(t *testing.T) {
	cases := map[string]struct {
		before, after, raw string
		patch              string // the exact anchored patch
	}{
		"an object that round-trips keeps its patch": {
			before: `{"spec":{"containers":[{"name":"a"}]}}`,
			after:  `{"spec":{"containers":[{"name":"a","env":[{"name":"X"}]}],"initContainers":[{"name":"r"}]}}`,
			raw:    `{"spec":{"containers":[{"name":"a"}]}}`,
			patch:  `[{"op":"add","path":"/spec/containers/0/env","value":[{"name":"X"}]},{"op":"add","path":"/spec/initContainers","value":[{"name":"r"}]}]`,
		},
		"a pod without spec gets the whole spec": {
			before: `{"metadata":{"labels":{"a":"b"}},"spec":{"containers":null}}`,
			after:  `{"metadata":{"labels":{"a":"b"}},"spec":{"containers":null,"initContainers":[{"name":"r"}],"volumes":[{"name":"v"}]}}`,
			raw:    `{"metadata":{"labels":{"a":"b"}}}`,
			patch:  `[{"op":"add","path":"/spec","value":{"containers":null,"initContainers":[{"name":"r"}],"volumes":[{"name":"v"}]}}]`,
		},
		"null metadata is replaced whole": {
			before: `{"metadata":{"creationTimestamp":null},"spec":{}}`,
			after:  `{"metadata":{"annotations":{"x/y":"1"},"creationTimestamp":null},"spec":{}}`,
			raw:    `{"metadata":null,"spec":{}}`,
			patch:  `[{"op":"add","path":"/metadata","value":{"annotations":{"x/y":"1"},"creationTimestamp":null}}]`,
		},
		"a null array element is replaced, not inserted before": {
			before: `{"spec":{"containers":[{"name":"a"},{"name":""}]}}`,
			after:  `{"spec":{"containers":[{"name":"a"},{"name":"","env":[{"name":"X"}]}]}}`,
			raw:    `{"spec":{"containers":[{"name":"a"},null]}}`,
			patch:  `[{"op":"replace","path":"/spec/containers/1","value":{"name":"","env":[{"name":"X"}]}}]`,
		},
		"a replace of a member raw lacks is an add": {
			before: `{"spec":{"containers":null}}`,
			after:  `{"spec":{"containers":[]}}`,
			raw:    `{"spec":{}}`,
			patch:  `[{"op":"add","path":"/spec/containers","value":[]}]`,
		},
		"a removal of what raw lacks is dropped": {
			before: `{"spec":{"containers":null,"x":1}}`,
			after:  `{"spec":{}}`,
			raw:    `{"spec":{"x":1}}`,
			patch:  `[{"op":"remove","path":"/spec/x"}]`,
		},
		"additions in order to an array": {
			before: `{"env":[{"name":"A"}]}`,
			after:  `{"env":[{"name":"A"},{"name":"X"},{"name":"Y"}]}`,
			raw:    `{"env":[{"name":"A"}]}`,
			patch:  `[{"op":"add","path":"/env/1","value":{"name":"X"}},{"op":"add","path":"/env/2","value":{"name":"Y"}}]`,
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			ops, err := admission.Diff([]byte(c.before), []byte(c.after))
			if err != nil {
				t.Fatal(err)
			}
			ops, err = admission.Anchor([]byte(c.raw), []byte(c.after), ops)
			if err != nil {
				t.Fatal(err)
			}
			patch, err := json.Marshal(ops)
			if err != nil {
				t.Fatal(err)
			}
			if string(patch) != c.patch {
				t.Errorf("patch\n got %s\nwant %s", patch, c.patch)
			}
			p, err := jsonpatch.DecodePatch(patch)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Apply([]byte(c.raw)); err != nil {
				t.Errorf("the patch does not apply to %s: %v", c.raw, err)
			}
		})
	}
}

func TestAnchorRefuses(t *testing.T) {
	after := []byte(`{"a":1}`)
	for name, op := range map[string]gomodules.Operation{
		"a pointer without a slash":     {Operation: "add", Path: "a", Value: 1},
		"the whole document":            {Operation: "replace", Path: "", Value: map[string]any{}},
		"an operation Diff never makes": {Operation: "move", Path: "/b"},
		"a value after lacks":           {Operation: "add", Path: "/b/c", Value: 1},
	} {
		if got, err := admission.Anchor([]byte(`{}`), after, []gomodules.Operation{op}); err == nil {
			t.Errorf("%s: Anchor = %v, want an error", name, got)
		}
	}
	// The documents are split without a second check: bytes that are not a JSON object
	// are refused first.
	add := []gomodules.Operation{{Operation: "add", Path: "/a", Value: json.RawMessage(`1`)}}
	for name, docs := range map[string][2]string{
		"raw not JSON":        {`{"b":[}`, `{"a":1}`},
		"raw not an object":   {`null`, `{"a":1}`},
		"after not JSON":      {`{}`, `{"a":1,}`},
		"after not an object": {`{}`, `[1]`},
	} {
		if got, err := admission.Anchor([]byte(docs[0]), []byte(docs[1]), add); err == nil || !strings.Contains(err.Error(), "valid JSON objects") {
			t.Errorf("%s: Anchor = %v, %v; want an error naming valid JSON objects", name, got, err)
		}
	}
}
