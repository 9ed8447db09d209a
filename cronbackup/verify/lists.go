package verify

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/pg"
)

// restoreLists are the pg_restore --use-list files of a verification, restored in this
// order: admin, the schemas and extensions (with their comments), which the admin
// restores (they run no production code, and the verifier may not create them);
// early, the definitions that depend on no table (pg.EarlyDefinitions); rest, every
// other entry. Entries a restored copy leaves out are in none, nor are row-level
// security policies (their roles are production's). An empty name is no
// list: for rest, every entry.
type restoreLists struct {
	admin, early, rest string
	// schemas are the schemas the admin's list creates, but public.
	schemas []string
}

func (l restoreLists) remove() {
	for _, f := range []string{l.admin, l.early, l.rest} {
		if f != "" {
			_ = os.Remove(f)
		}
	}
}

// adminEntry tells whether the admin restores e: a schema, an extension, or the
// comment on one.
func adminEntry(e pg.TOCEntry) bool {
	switch e.Desc {
	case "SCHEMA", "EXTENSION":
		return true
	case "COMMENT":
		return strings.HasPrefix(e.Tag, "SCHEMA ") || strings.HasPrefix(e.Tag, "EXTENSION ")
	}
	return false
}

// restoreLists reads the archive's table of contents from head and writes the lists,
// in the archive's order. An unreadable table of contents gives none: pg_restore then
// reads everything as the verifier, and fails on what it cannot read.
func (r *run) restoreLists(head io.Reader, scratch string) (restoreLists, error) {
	var lists restoreLists
	toc, err := pg.ReadTOC(head)
	if err != nil {
		r.log.Info("table of contents not read; restoring every entry", "error", err.Error())
		return lists, nil
	}
	isEarly := map[int]bool{}
	for _, id := range pg.EarlyDefinitions(toc) {
		isEarly[id] = true
	}
	var admin, early, rest strings.Builder
	var left, policies []string
	for _, e := range toc {
		entry := pg.ListEntry(e)
		if _, out := pg.LeftOutOfCopies(entry); out {
			left = append(left, strings.TrimSpace(entry))
			continue
		}
		if e.Desc == "POLICY" || e.Desc == "COMMENT" && strings.HasPrefix(e.Tag, "POLICY ") {
			policies = append(policies, strings.TrimSpace(entry))
			continue
		}
		line := fmt.Sprintf("%d;\n", e.ID)
		switch {
		case adminEntry(e):
			admin.WriteString(line)
			if e.Desc == "SCHEMA" && e.Tag != "public" {
				lists.schemas = append(lists.schemas, e.Tag)
			}
		case isEarly[e.ID]:
			early.WriteString(line)
		default:
			rest.WriteString(line)
		}
	}
	if len(left) > 0 {
		r.log.Info("archive entries a restored copy leaves out", "entries", left)
	}
	if len(policies) > 0 {
		// They name production's roles, which this server may lack, and change no
		// count: the verifier owns the tables.
		r.log.Info("row-level security policies not restored by a verification", "entries", policies)
	}
	restList, earlyList := rest.String(), early.String()
	if restList == "" {
		restList, earlyList = earlyList, ""
	}
	if lists.admin, err = writeListIf(scratch, admin.String()); err != nil {
		return lists, err
	}
	if lists.early, err = writeListIf(scratch, earlyList); err != nil {
		return lists, err
	}
	lists.rest, err = writeList(scratch, restList)
	return lists, err
}

// writeListIf is writeList of a list that is not empty, or no file.
func writeListIf(scratch, list string) (string, error) {
	if list == "" {
		return "", nil
	}
	return writeList(scratch, list)
}

func writeList(scratch, list string) (string, error) {
	f, err := os.CreateTemp("", scratch+"-*.list")
	if err != nil {
		return "", exitcode.Wrap(ExitUnexpected, fmt.Errorf("writing the restore list: %w", err))
	}
	defer f.Close()
	if _, err := f.WriteString(list); err != nil {
		return f.Name(), exitcode.Wrap(ExitUnexpected, fmt.Errorf("writing the restore list: %w", err))
	}
	return f.Name(), f.Close()
}
