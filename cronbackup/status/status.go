// Package status is `cronbackup status STORAGE_URL`: per namespace, the latest backup's
// time, size and sha256, read from the manifests alone. It never reads a dump: exporting
// customer data to a workstation is what the LGPD rules of the operations page forbid.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/smartbackup/smartbackup/internal/layout"
	"github.com/smartbackup/smartbackup/internal/storage"
)

// Row is one namespace's backups.
type Row struct {
	Namespace string    `json:"namespace"`
	Latest    string    `json:"latest,omitempty"`
	Time      time.Time `json:"time,omitzero"`
	Size      int64     `json:"size"`
	SHA256    string    `json:"sha256,omitempty"`
	Database  string    `json:"database,omitempty"`
	// Backups counts the dated backups kept.
	Backups int `json:"backups"`
	// Problem says what is wrong (no manifest, unreadable manifest).
	Problem string `json:"problem,omitempty"`
}

// Collect lists the store and reads every latest manifest.
func Collect(ctx context.Context, st storage.Store) ([]Row, error) {
	objs, err := st.List(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", st, err)
	}
	rows := map[string]*Row{}
	sizes := map[string]int64{}
	row := func(ns string) *Row {
		if rows[ns] == nil {
			rows[ns] = &Row{Namespace: ns}
		}
		return rows[ns]
	}
	for _, o := range objs {
		ns, name, ok := strings.Cut(o.Key, "/")
		if !ok || layout.ValidNamespace(ns) != nil {
			continue
		}
		sizes[o.Key] = o.Size
		switch {
		case name == layout.LatestObject:
			row(ns).Size = o.Size
		case strings.HasSuffix(name, layout.DumpSuffix):
			if _, ok := layout.ParseBackupKey(o.Key); ok {
				row(ns).Backups++
			}
		}
	}
	for ns, r := range rows {
		m, err := readManifest(ctx, st, layout.LatestManifestKey(ns))
		switch {
		case errors.Is(err, storage.ErrNotFound):
			if r.Size > 0 {
				r.Latest, r.Problem = layout.LatestKey(ns), "latest has no manifest (made by the shell pipeline?)"
			} else {
				r.Problem = "no latest backup"
			}
		case err != nil:
			r.Problem = err.Error()
		default:
			// Restores read the immutable object the latest manifest names (see
			// initrestore): judge that one; the latest copy is for the page's tools.
			r.Latest, r.Time, r.SHA256, r.Database = m.Object, m.StartedAt, m.SHA256, m.Database
			size, ok := sizes[m.Object]
			switch {
			case !ok:
				r.Problem = fmt.Sprintf("the latest manifest names %s, which is missing: restores take the newest complete backup", m.Object)
			case size != m.Size:
				r.Problem = fmt.Sprintf("%s has %d bytes, its manifest says %d: restores take the newest complete backup", m.Object, size, m.Size)
			case r.Size != m.Size:
				r.Problem = fmt.Sprintf("%s has %d bytes, the latest manifest says %d (an interrupted promotion; restores are not affected)", layout.LatestObject, r.Size, m.Size)
			}
			if ok {
				r.Size = size
			}
		}
	}
	out := make([]Row, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace < out[j].Namespace })
	return out, nil
}

func readManifest(ctx context.Context, st storage.Store, key string) (layout.Manifest, error) {
	rc, _, err := st.Open(ctx, key)
	if err != nil {
		return layout.Manifest{}, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return layout.Manifest{}, fmt.Errorf("reading %q: %w", key, err)
	}
	return layout.ParseManifest(b)
}

// Print writes rows as a table, or as JSON lines.
func Print(w io.Writer, rows []Row, asJSON bool, now time.Time) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tLATEST BACKUP (UTC)\tAGE\tSIZE\tSHA256\tBACKUPS\tPROBLEM")
	for _, r := range rows {
		when, age := "-", "-"
		if !r.Time.IsZero() {
			when, age = r.Time.UTC().Format("2006-01-02 15:04"), now.Sub(r.Time).Round(time.Minute).String()
		}
		sha := r.SHA256
		if len(sha) > 16 {
			sha = sha[:16] + "…"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Namespace, when, age, humanBytes(r.Size), sha, r.Backups, r.Problem)
	}
	return tw.Flush()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
