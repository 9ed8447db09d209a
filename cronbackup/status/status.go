// Package status is `cronbackup status STORAGE_URL`: per namespace, the latest backup's
// time, size and sha256, read from the manifests alone. It never reads a dump: exporting
// customer data to a workstation is what the LGPD rules of the operations page forbid.
package status

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/smartbackup/smartbackup/internal/inventory"
	"github.com/smartbackup/smartbackup/internal/storage"
)

// Row is one namespace's backups.
type Row = inventory.Namespace

// Collect lists the store and reads every latest manifest.
func Collect(ctx context.Context, st storage.Store) ([]Row, error) {
	return inventory.Collect(ctx, st)
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Namespace, when, age, inventory.HumanBytes(r.Size), sha, r.Backups, r.Problem)
	}
	return tw.Flush()
}
