package status

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/smartbackup/smartbackup/internal/layout"
	"github.com/smartbackup/smartbackup/internal/storage"
)

// openedKeys wraps a real store and remembers what was opened.
type openedKeys struct {
	storage.Store
	opened []string
}

func (o *openedKeys) Open(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	o.opened = append(o.opened, key)
	return o.Store.Open(ctx, key)
}

func TestCollectReadsManifestsOnly(t *testing.T) {
	ctx := t.Context()
	st, err := storage.Open(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put := func(key, body string) {
		if _, err := st.Put(ctx, key, strings.NewReader(body), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	m := layout.Manifest{Version: 1, Namespace: "cliente-prod", Object: layout.BackupKey("cliente-prod", at), Size: 9,
		SHA256: strings.Repeat("ab", 32), Database: "erp", StartedAt: at}
	mb, _ := m.Marshal()
	for _, d := range []int{-1, 0} {
		put(layout.BackupKey("cliente-prod", at.AddDate(0, 0, d)), "dump body")
	}
	put(layout.LatestKey("cliente-prod"), "dump body")
	put(layout.LatestManifestKey("cliente-prod"), string(mb))
	put(layout.LatestKey("legado-prod"), "old shell dump")
	// A promotion killed after the latest copy: the manifest still names the previous
	// backup, which is whole.
	pm := m
	pm.Namespace, pm.Object = "meio-prod", layout.BackupKey("meio-prod", at)
	pmb, _ := pm.Marshal()
	put(pm.Object, "dump body")
	put(layout.LatestKey("meio-prod"), "a newer dump")
	put(layout.LatestManifestKey("meio-prod"), string(pmb))
	// A latest manifest whose object is gone.
	gm := m
	gm.Namespace, gm.Object = "sumido-prod", layout.BackupKey("sumido-prod", at)
	gmb, _ := gm.Marshal()
	put(layout.LatestKey("sumido-prod"), "dump body")
	put(layout.LatestManifestKey("sumido-prod"), string(gmb))

	spy := &openedKeys{Store: st}
	rows, err := Collect(ctx, spy)
	if err != nil {
		t.Fatal(err)
	}
	want := []Row{
		{Namespace: "cliente-prod", Latest: m.Object, Time: at, Size: 9, SHA256: m.SHA256, Database: "erp", Backups: 2},
		{Namespace: "legado-prod", Latest: "legado-prod/database_latest.dump.gz", Size: 14, Problem: "latest has no manifest (made by the shell pipeline?)"},
		{Namespace: "meio-prod", Latest: pm.Object, Time: at, Size: 9, SHA256: m.SHA256, Database: "erp", Backups: 1,
			Problem: "database_latest.dump.gz has 12 bytes, the latest manifest says 9 (an interrupted promotion; restores are not affected)"},
		{Namespace: "sumido-prod", Latest: gm.Object, Time: at, Size: 9, SHA256: m.SHA256, Database: "erp",
			Problem: "the latest manifest names sumido-prod/database_20261124T000000Z.dump.gz, which is missing: restores take the newest complete backup"},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	for _, k := range spy.opened {
		if strings.HasSuffix(k, layout.DumpSuffix) {
			t.Errorf("status read a dump: %s", k)
		}
	}
	var out bytes.Buffer
	if err := Print(&out, rows, false, at.Add(26*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "cliente-prod  2026-11-24 00:00     26h0m0s") || !strings.Contains(out.String(), "abababababababab…") {
		t.Errorf("table:\n%s", out.String())
	}
}
