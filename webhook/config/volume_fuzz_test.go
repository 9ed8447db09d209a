package config_test

import (
	"path"
	"strings"
	"testing"

	"github.com/smartbackup/smartbackup/webhook/config"
)

// FuzzParseVolume: VOLUME_SOURCE never panics the parser, and what it accepts is a
// clean absolute directory (other than /) on a named server or the node, so a
// namespace's volume is always rooted below it.
func FuzzParseVolume(f *testing.F) {
	for _, s := range []string{"nfs://nfs.backup.internal/exports/smartbackup", "nfs://10.0.0.5/srv/b",
		"hostpath:///srv/smartbackup?read_only_root=/srv/smartbackup-ro", "nfs://server/a/../b", "hostpath:///srv/b?read_only_root=/srv/b",
		"nfs://[::1]/x", "nfs://server/%2e%2e/x", "hostpath:///a?read_only_root=%2Fb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := config.ParseVolume(raw)
		if err != nil {
			return
		}
		clean := func(p string) bool {
			return path.IsAbs(p) && path.Clean(p) == p && p != "/" && !strings.Contains(p, "\n")
		}
		switch v.Kind {
		case config.VolumeNFS:
			if v.Server == "" || !clean(v.Root) || v.ReadOnlyRoot != "" {
				t.Fatalf("ParseVolume(%q) = %+v", raw, v)
			}
		case config.VolumeHostPath:
			if v.Server != "" || !clean(v.Root) || !clean(v.ReadOnlyRoot) || v.Root == v.ReadOnlyRoot {
				t.Fatalf("ParseVolume(%q) = %+v", raw, v)
			}
		default:
			t.Fatalf("ParseVolume(%q): kind %q", raw, v.Kind)
		}
		// A namespace's directory stays below the root.
		if d := path.Join(v.Root, "acme-prd"); !strings.HasPrefix(d, v.Root+"/") {
			t.Fatalf("%q escapes %q", d, v.Root)
		}
	})
}
