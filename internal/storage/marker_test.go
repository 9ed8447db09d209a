package storage_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smartbackup/smartbackup/internal/storage"
)

// A marked volume (namespace_marker=true) reads a namespace's directory only when its
// marker names that namespace: a missing, empty or mis-bound directory is unreachable,
// never "no backup".
func TestNamespaceMarker(t *testing.T) {
	root := t.TempDir()
	st, err := storage.Open(t.Context(), "file://"+root+"?namespace_marker=true")
	if err != nil {
		t.Fatal(err)
	}
	key := "cliente-prod/database_latest.dump.gz"
	unprovisioned := func(what string) {
		t.Helper()
		_, err := st.Stat(t.Context(), key)
		if !errors.Is(err, storage.ErrNotProvisioned) || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s: Stat: %v, want ErrNotProvisioned and not ErrNotFound", what, err)
		}
		if _, err := st.List(t.Context(), "cliente-prod/"); !errors.Is(err, storage.ErrNotProvisioned) {
			t.Errorf("%s: List: %v, want ErrNotProvisioned", what, err)
		}
		if _, err := st.Put(t.Context(), key, strings.NewReader("x"), storage.PutOptions{}); !errors.Is(err, storage.ErrNotProvisioned) {
			t.Errorf("%s: Put: %v, want ErrNotProvisioned", what, err)
		}
	}
	unprovisioned("no directory")
	// What the kubelet leaves for a missing subPath or a hostPath DirectoryOrCreate.
	if err := os.Mkdir(filepath.Join(root, "cliente-prod"), 0o755); err != nil {
		t.Fatal(err)
	}
	unprovisioned("empty directory")
	// A volume bound to another namespace's directory.
	if err := storage.MarkNamespace(root, "outro-prod"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "cliente-prod", storage.NamespaceMarker), []byte("outro-prod\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unprovisioned("marked for another namespace")
	if err := storage.MarkNamespace(root, "cliente-prod"); err == nil {
		t.Fatal("MarkNamespace took over a directory marked for another namespace")
	}

	if err := os.Remove(filepath.Join(root, "cliente-prod", storage.NamespaceMarker)); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := storage.MarkNamespace(root, "cliente-prod"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Stat(t.Context(), key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("provisioned, no backup: Stat: %v, want ErrNotFound", err)
	}
	if l, err := st.List(t.Context(), "cliente-prod/"); err != nil || len(l) != 0 {
		t.Fatalf("provisioned, no backup: List: %v %v, want nothing (the marker is not an object)", l, err)
	}
	if _, err := st.Put(t.Context(), key, strings.NewReader("x"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if l, err := st.List(t.Context(), "cliente-prod/"); err != nil || len(l) != 1 || l[0].Key != key {
		t.Fatalf("List: %v %v", l, err)
	}
	for _, bad := range []string{"", ".", "..", "a/b", ".hidden"} {
		if err := storage.MarkNamespace(root, bad); err == nil {
			t.Errorf("MarkNamespace(%q) succeeded", bad)
		}
	}
	// Without the option, the same store reads the directory as before.
	plain, err := storage.Open(t.Context(), "file://"+root+"/outro-prod")
	if err != nil {
		t.Fatal(err)
	}
	if l, err := plain.List(t.Context(), ""); err != nil || len(l) != 0 {
		t.Fatalf("plain store: %v %v", l, err)
	}
	if _, err := storage.ParseURL("file:///backups?namespace_marker=maybe"); !errors.Is(err, storage.ErrInvalidURL) {
		t.Fatalf("namespace_marker=maybe: %v", err)
	}
}
