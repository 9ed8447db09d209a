package cli

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := map[string]struct {
		args    string
		want    Command
		wantErr string
	}{
		"status of the context's namespace": {args: "status", want: Command{Verb: VerbStatus, Output: OutputTable}},
		"status -A as json":                 {args: "status -A -o json", want: Command{Verb: VerbStatus, AllNamespaces: true, Output: OutputJSON}},
		"status of two namespaces, flags after": {args: "status acme-prd acme-hml --output=json --store gs://b/p",
			want: Command{Verb: VerbStatus, Namespaces: []string{"acme-prd", "acme-hml"}, Output: OutputJSON, Store: "gs://b/p"}},
		"history with kubeconfig and context": {args: "history acme-hml --kubeconfig /k --context=ctx",
			want: Command{Verb: VerbHistory, Namespaces: []string{"acme-hml"}, Output: OutputTable, Kubeconfig: "/k", Context: "ctx"}},
		"restore --own --apply --id": {args: "restore --own acme-hml --apply --id chamado-4711",
			want: Command{Verb: VerbRestore, Namespaces: []string{"acme-hml"}, Own: true, Apply: true, RequestID: "chamado-4711", Output: OutputTable}},
		"verify --wait":           {args: "verify acme-prd --wait", want: Command{Verb: VerbVerify, Namespaces: []string{"acme-prd"}, Wait: true, Output: OutputTable}},
		"backup after --":         {args: "backup -- acme-prd", want: Command{Verb: VerbBackup, Namespaces: []string{"acme-prd"}, Output: OutputTable}},
		"help":                    {args: "--help", want: Command{Verb: VerbHelp, Output: OutputTable}},
		"help on a command":       {args: "help restore", want: Command{Verb: VerbHelp, Topic: VerbRestore, Output: OutputTable}},
		"-h after a command":      {args: "verify acme -h", want: Command{Verb: VerbHelp, Topic: VerbVerify, Output: OutputTable}},
		"no command":              {args: "", wantErr: "a command is needed"},
		"unknown command":         {args: "drop acme", wantErr: `unknown command "drop"`},
		"unknown flag":            {args: "status --all", wantErr: `unknown flag "--all"`},
		"flag of another command": {args: "status --apply", wantErr: "--apply does not apply to status"},
		"-A with namespaces":      {args: "status -A acme", wantErr: "-A or namespaces, not both"},
		"restore of two":          {args: "restore a b", wantErr: "restore takes exactly one namespace"},
		"history of none":         {args: "history", wantErr: "history takes exactly one namespace"},
		"bad namespace":           {args: "history Acme_Prd", wantErr: "not a Kubernetes namespace name"},
		"missing value":           {args: "restore acme --id", wantErr: "--id needs a value"},
		"value on a switch":       {args: "restore acme --apply=false", wantErr: "--apply takes no value"},
		"bad output":              {args: "status -o yaml", wantErr: `output "yaml" is not table or json`},
		"multi-line id":           {args: "restore acme --id=a\nb", wantErr: "one line"},
		"help on nothing known":   {args: "help drop", wantErr: `no help on "drop"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var args []string
			if tc.args != "" {
				args = strings.Split(tc.args, " ")
			}
			got, err := Parse(args)
			if tc.wantErr != "" {
				var ue *UsageError
				if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%q) = %+v, %v; want a usage error with %q", args, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v", args, got, err, tc.want)
			}
		})
	}
}

// FuzzParseArgs: Parse never panics, fails only with a UsageError, and what it accepts
// renders back (Args) to a command line it reads as the same command.
func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{"status", "status\x00-A\x00-o\x00json", "restore\x00acme\x00--own\x00--apply\x00--id=x",
		"history\x00--store\x00gs://b\x00acme", "verify\x00--\x00acme\x00--wait", "help\x00status", "backup\x00--kubeconfig=a=b\x00acme"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		args := strings.Split(in, "\x00")
		c, err := Parse(args)
		if err != nil {
			var ue *UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("Parse(%q): %v is not a UsageError", args, err)
			}
			return
		}
		again, err := Parse(c.Args())
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("Parse(%q) = %+v; its Args %q parse to %+v, %v", args, c, c.Args(), again, err)
		}
	})
}
