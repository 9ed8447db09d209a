package admission

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplit(t *testing.T) {
	t.Run("members", func(t *testing.T) {
		cases := map[string]struct {
			in   string
			want map[string]string
		}{
			"empty":                         {`{}`, map[string]string{}},
			"blanks everywhere":             {" {\n \"a\" :\t1 , \"b\":[ 1, {\"c\":\"}\"} ] }\n", map[string]string{"a": `1`, "b": `[ 1, {"c":"}"} ]`}},
			"escapes in names and values":   {`{"x\/y\u007e":"q\"}\\","z":{"\"":null}}`, map[string]string{"x/y~": `"q\"}\\"`, "z": `{"\"":null}`}},
			"the last of a repeated name":   {`{"a":1,"a":[2]}`, map[string]string{"a": `[2]`}},
			"scalars of every kind":         {`{"n":-1.5e3,"t":true,"f":false,"z":null,"s":""}`, map[string]string{"n": `-1.5e3`, "t": `true`, "f": `false`, "z": `null`, "s": `""`}},
			"strings holding JSON's syntax": {`{"a":"[{,:}]","b":"\\"}`, map[string]string{"a": `"[{,:}]"`, "b": `"\\"`}},
			"a name not in UTF-8":           {"{\"\xff\":null,\"a\xc3\":1}", map[string]string{"\ufffd": `null`, "a\ufffd": `1`}},
		}
		for name, tc := range cases {
			t.Run(name, func(t *testing.T) {
				m, err := members([]byte(tc.in))
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]string{}
				for k, v := range m {
					got[k] = string(v)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("members(%s) (-want +got):\n%s", tc.in, diff)
				}
			})
		}
	})
	t.Run("elements", func(t *testing.T) {
		cases := map[string]struct {
			in   string
			want []string
		}{
			"empty":          {`[ ]`, nil},
			"nested":         {`[[],[[1]], {"a":[2,3]} ,"]",0]`, []string{`[]`, `[[1]]`, `{"a":[2,3]}`, `"]"`, `0`}},
			"blanks between": {"[\n1 ,\t2\r]", []string{`1`, `2`}},
		}
		for name, tc := range cases {
			t.Run(name, func(t *testing.T) {
				var got []string
				for _, e := range elements([]byte(tc.in)) {
					got = append(got, string(e))
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("elements(%s) (-want +got):\n%s", tc.in, diff)
				}
			})
		}
	})
}

// FuzzSplit: on valid JSON, an object's members and an array's elements are what
// encoding/json decodes; on any bytes, splitting returns.
func FuzzSplit(f *testing.F) {
	f.Add(`{"a":[1,{"b":"}"}],"c\u0041":null}`)
	f.Add(`[1,"x",[],{}]`)
	f.Add(`{,:}`)
	f.Add(`[,,]`)
	f.Add(`{"a`)
	f.Add("{\"\xff\":null}")
	f.Fuzz(func(t *testing.T, in string) {
		m, _ := members([]byte(in))
		l := elements([]byte(in))
		if !json.Valid([]byte(in)) {
			return
		}
		var wantM map[string]json.RawMessage
		if json.Unmarshal([]byte(in), &wantM) == nil && wantM != nil {
			if len(m) != len(wantM) {
				t.Fatalf("members(%s): %d names, encoding/json %d", in, len(m), len(wantM))
			}
			for k, v := range wantM {
				if string(m[k]) != string(v) {
					t.Fatalf("members(%s)[%q] = %s, encoding/json %s", in, k, m[k], v)
				}
			}
		}
		var wantL []json.RawMessage
		if json.Unmarshal([]byte(in), &wantL) == nil && wantL != nil {
			if len(l) != len(wantL) {
				t.Fatalf("elements(%s): %d, encoding/json %d", in, len(l), len(wantL))
			}
			for i := range wantL {
				if string(l[i]) != string(wantL[i]) {
					t.Fatalf("elements(%s)[%d] = %s, encoding/json %s", in, i, l[i], wantL[i])
				}
			}
		}
	})
}
