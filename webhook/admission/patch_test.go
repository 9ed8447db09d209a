package admission_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/google/go-cmp/cmp"
	gomodules "gomodules.xyz/jsonpatch/v2"

	"github.com/smartbackup/smartbackup/webhook/admission"
)

// applyDiff applies Diff(a, b) to target and returns the result decoded.
func applyDiff(t testing.TB, a, b, target string) (any, string) {
	t.Helper()
	ops, err := admission.Diff([]byte(a), []byte(b))
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	raw, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	// The handler's encoding is json.Marshal's for documents json.Marshal writes
	// (compact, HTML-escaped).
	var compact bytes.Buffer
	if len(ops) > 0 && json.Compact(&compact, []byte(b)) == nil && compact.String() == b && !strings.ContainsAny(b, "<>&\u2028\u2029") {
		enc, err := admission.EncodePatch(ops)
		if err != nil || string(enc) != string(raw) {
			t.Fatalf("EncodePatch = %s, %v; json.Marshal wrote %s", enc, err, raw)
		}
	}
	p, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	out, err := p.Apply([]byte(target))
	if err != nil {
		t.Fatalf("applying %s to %s: %v", raw, target, err)
	}
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	return v, string(raw)
}

func decode(t testing.TB, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestDiff(t *testing.T) {
	cases := map[string]struct {
		a, b string
		// target is the document the patch is applied to ("": a); want is the result
		// ("": b).
		target, want string
		patch        string // the exact patch; "" skips the check
	}{
		"equal documents give no patch": {
			a: `{"a":1,"b":[1,2]}`, b: `{"a":1,"b":[1,2]}`, patch: `null`,
		},
		"an element inserted first is one add, not a rewrite of those after it": {
			a:     `{"spec":{"initContainers":[{"name":"migrate","args":["a"]}]}}`,
			b:     `{"spec":{"initContainers":[{"name":"restore","env":[{"name":"X"}]},{"name":"migrate","args":["a"]}]}}`,
			patch: `[{"op":"add","path":"/spec/initContainers/0","value":{"name":"restore","env":[{"name":"X"}]}}]`,
		},
		"elements inserted in the middle and at the end": {
			a:     `{"l":[1,2,3]}`,
			b:     `{"l":[1,7,8,2,3,9]}`,
			patch: `[{"op":"replace","path":"/l/1","value":7},{"op":"replace","path":"/l/2","value":8},{"op":"add","path":"/l/3","value":2},{"op":"add","path":"/l/4","value":3},{"op":"add","path":"/l/5","value":9}]`,
		},
		"env vars prepended to the author's": {
			a:     `{"env":[{"name":"A","value":"1"},{"name":"B","value":"2"}]}`,
			b:     `{"env":[{"name":"X","value":"x"},{"name":"Y","value":"y"},{"name":"A","value":"1"},{"name":"B","value":"2"}]}`,
			patch: `[{"op":"add","path":"/env/0","value":{"name":"X","value":"x"}},{"op":"add","path":"/env/1","value":{"name":"Y","value":"y"}}]`,
		},
		"an annotation key is escaped": {
			a:     `{"metadata":{"annotations":{"a~b":"1"}}}`,
			b:     `{"metadata":{"annotations":{"a~b":"1","smartbackup.io/injected":"v2"}}}`,
			patch: `[{"op":"add","path":"/metadata/annotations/smartbackup.io~1injected","value":"v2"}]`,
		},
		"removals of members and of elements": {
			a:     `{"a":1,"b":{"c":[1,2,3,4],"d":"x"}}`,
			b:     `{"b":{"c":[1,4]}}`,
			patch: `[{"op":"remove","path":"/a"},{"op":"remove","path":"/b/d"},{"op":"remove","path":"/b/c/1"},{"op":"remove","path":"/b/c/1"}]`,
		},
		"a changed kind is replaced whole": {
			a: `{"a":{"x":1},"b":[1],"c":null,"d":"s"}`,
			b: `{"a":[1],"b":{"x":1},"c":{"y":2},"d":false}`,
		},
		"an element rewritten in place recurses into it": {
			a:     `{"c":[{"name":"restore","image":"old","env":[{"name":"X","value":"1"}]},{"name":"migrate"}]}`,
			b:     `{"c":[{"name":"restore","image":"new","env":[{"name":"X","value":"2"}]},{"name":"migrate"}]}`,
			patch: `[{"op":"replace","path":"/c/0/env/0/value","value":"2"},{"op":"replace","path":"/c/0/image","value":"new"}]`,
		},
		"a field the typed documents lack stays in the apiserver's object": {
			a:      `{"spec":{"containers":[{"name":"dbaccess","env":[{"name":"A"}]}]}}`,
			b:      `{"spec":{"containers":[{"name":"dbaccess","env":[{"name":"X"},{"name":"A"}]}]}}`,
			target: `{"spec":{"containers":[{"name":"dbaccess","futureField":{"on":true},"env":[{"name":"A","futureField":1}]}],"futureSpec":2}}`,
			want:   `{"spec":{"containers":[{"name":"dbaccess","futureField":{"on":true},"env":[{"name":"X"},{"name":"A","futureField":1}]}],"futureSpec":2}}`,
		},
		"strings with escapes and unicode compare by their bytes": {
			a: `{"v":"S\u00e3o Paulo","w":"a\"b"}`,
			b: `{"v":"São Paulo","w":"a\"b"}`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			target, want := tc.target, tc.want
			if target == "" {
				target = tc.a
			}
			if want == "" {
				want = tc.b
			}
			got, patch := applyDiff(t, tc.a, tc.b, target)
			if diff := cmp.Diff(decode(t, want), got); diff != "" {
				t.Errorf("patched document differs (-want +got):\n%s\npatch %s", diff, patch)
			}
			if tc.patch != "" && patch != tc.patch {
				t.Errorf("patch\n %s\nwant\n %s", patch, tc.patch)
			}
		})
	}
}

func TestDiffRefusesNonObjects(t *testing.T) {
	for _, pair := range [][2]string{{`[1]`, `{}`}, {`{}`, `2`}, {``, `{}`}, {`{"a":1}`, `{"a":[1,}`}, {`{"a":{"b":1,}}`, `{"a":{"b":2}}`}} {
		if ops, err := admission.Diff([]byte(pair[0]), []byte(pair[1])); err == nil {
			t.Errorf("Diff(%q, %q) = %v, want an error", pair[0], pair[1], ops)
		}
	}
}

// TestEncodePatch: the handler's encoding of operations is what json.Marshal writes of
// them, the framework's encoding (values compact already, as the handler's are).
func TestEncodePatch(t *testing.T) {
	for name, ops := range map[string][]gomodules.Operation{
		"none": {},
		"each kind of operation": {
			{Operation: "add", Path: "/metadata/annotations/smartbackup.io~1injected", Value: json.RawMessage(`"v2-1"`)},
			{Operation: "replace", Path: "/spec/containers/0", Value: json.RawMessage(`{"name":"a","env":[{"name":"X","value":"\u003c\"q\""}]}`)},
			{Operation: "remove", Path: "/spec/x~0y"},
		},
		"a value that is not raw JSON":          {{Operation: "add", Path: "/a", Value: map[string]any{"b": []int{1}}}},
		"an add of nothing writes a null value": {{Operation: "add", Path: "/a"}, {Operation: "replace", Path: "/b"}},
		"a path that needs quoting":             {{Operation: "add", Path: "/a\"b\\c<d", Value: json.RawMessage(`1`)}},
	} {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(ops)
			if err != nil {
				t.Fatal(err)
			}
			got, err := admission.EncodePatch(ops)
			if err != nil {
				t.Fatal(err)
			}
			if len(ops) == 0 {
				want = []byte("[]")
			}
			if string(got) != string(want) {
				t.Errorf("EncodePatch\n got %s\nwant %s", got, want)
			}
		})
	}
}

// FuzzDiff: for any two JSON objects (as encoding/json writes them), the patch turns
// the first into the second. Documents with an empty member name are left out: the
// apiserver's patch library cannot address one (RFC 6901 can), and the apiserver
// refuses such a key in a pod anyway.
func FuzzDiff(f *testing.F) {
	f.Add(`{"a":[1,2,{"b":3}]}`, `{"a":[0,1,2,{"b":4}],"c":"/~"}`)
	f.Add(`{"x/y":{"z~":[[]]}}`, `{"x/y":{"z~":[[1],[]]}}`)
	f.Add(`{"a":[1,1,1]}`, `{"a":[1,1]}`)
	f.Add(`{}`, `{"k":{"":null}}`)
	f.Fuzz(func(t *testing.T, a, b string) {
		var va, vb map[string]any
		if json.Unmarshal([]byte(a), &va) != nil || json.Unmarshal([]byte(b), &vb) != nil || va == nil || vb == nil ||
			hasEmptyKey(va) || hasEmptyKey(vb) {
			return
		}
		ca, _ := json.Marshal(va)
		cb, _ := json.Marshal(vb)
		got, patch := applyDiff(t, string(ca), string(cb), string(ca))
		if !reflect.DeepEqual(got, decode(t, string(cb))) {
			t.Fatalf("Diff(%s, %s) = %s gives %v", ca, cb, patch, got)
		}
	})
}

func hasEmptyKey(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if k == "" || hasEmptyKey(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if hasEmptyKey(e) {
				return true
			}
		}
	}
	return false
}
