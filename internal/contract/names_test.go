package contract

import (
	"go/ast"
	"go/parser"
	"go/token"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestNamesListsEveryConstant: a new Env constant must also be in Names.
func TestNamesListsEveryConstant(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "contract.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var consts []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || !strings.HasPrefix(vs.Names[0].Name, "Env") || strings.HasPrefix(vs.Names[0].Name, "Environment") {
			return true
		}
		if lit, ok := vs.Values[0].(*ast.BasicLit); ok {
			v, _ := strconv.Unquote(lit.Value)
			consts = append(consts, v)
		}
		return true
	})
	names := append([]string(nil), Names...)
	sort.Strings(consts)
	sort.Strings(names)
	if diff := cmp.Diff(consts, names); diff != "" {
		t.Errorf("Names vs the constants of contract.go (-constants +Names):\n%s", diff)
	}
}
