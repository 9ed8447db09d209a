package restore

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/smartbackup/smartbackup/internal/pg"
)

// Thresholds of PlanSpooled.
const (
	// minSplitTables is the fewest small tables worth splitting a restore for: each
	// concurrent pg_restore reads the whole table of contents and opens a connection.
	minSplitTables = 64
	// bigData: tables holding this much data (one table, or tables tied together) go
	// to the parallel pg_restore, whose workers build one table's indexes side by side;
	// smaller ones to the serial runs.
	bigData = 8 << 20
	// entryBytes weighs data against entries when dealing tables to the serial runs:
	// an entry (a CREATE TABLE, an index on a small table) costs the server about as
	// much as loading this much data.
	entryBytes = 64 << 10
)

// RestoreRun is one pg_restore of a spooled archive: the entries of the restore list
// it restores (every one when IDs is nil), narrowed to Sections when set, with Jobs
// workers.
type RestoreRun struct {
	Name     string // what it restores, for the log
	IDs      []int
	Sections []string
	Jobs     int
	// Tables are the tables whose data the big tables' run loads, analyzed as soon as
	// it ends when nothing is to be masked (analyzeEarly).
	Tables []TableName
	// PinAfter: the run creates the functions that depend on no table, whose search
	// paths are pinned once its stage ends (pg.EarlyDefinitions).
	PinAfter bool
}

// TableName is a table's schema and name, unquoted.
type TableName struct{ Schema, Name string }

// Stage is pg_restore runs that go side by side; the stages of a plan go one after
// another.
type Stage []RestoreRun

// PlanSpooled is how a spooled archive is restored with jobs connections: toc is its
// table of contents (nil when unreadable), listed the dump ids the restore list keeps,
// archiveSize its size in bytes.
//
// One pg_restore of everything when jobs is 1 or the server is at wal_level=minimal:
// a parallel pg_restore that has just created a table loads it in BEGIN; TRUNCATE;
// COPY; COMMIT, which spares the COPY's WAL there, while anywhere else the TRUNCATE
// only costs, and dearly: a commit that drops a relation file flushes the WAL whatever
// synchronous_commit says, one fsync per table. A run that did not create the tables
// does not truncate them.
//
// An ERP company's database is thousands of small tables, each with a primary key and
// a few indexes, and a few big ones. A parallel pg_restore spends a client CPU-second
// per few thousand entries on its scheduling (PostgreSQL 15's pg_restore) and runs
// the definitions one statement at a time whatever its workers, so when the archive
// has at least minSplitTables small tables (splitTables):
//
//  1. one serial run: the definitions that depend on no table (schemas, types,
//     functions, sequences) and those of the big tables;
//  2. side by side: the big tables' data and indexes in one parallel pg_restore of
//     half the jobs, and the small tables, each with everything on it alone
//     (definition, data, indexes, triggers, comments), dealt to serial runs for the
//     other half;
//  3. one parallel run: what ties tables of different runs together (foreign keys, a
//     materialized view's data, event triggers, sequence values…).
//
// Otherwise the definitions in one serial run, then data and post-data in one parallel
// run.
//
// When the archive has functions that depend on no table, a first serial run creates
// them, with the other definitions that depend on no table (SplitEarly), and the
// restore pins their search paths before the plan's runs restore the rest
// (pg.EarlyDefinitions says why: a CHECK constraint inlines its function when it is
// created, so the tables come after the pins). The single run at wal_level=minimal
// still creates its tables, so still loads them without WAL.
//
// Measured on PostgreSQL 12 (durable, wal_level=replica), 3,000 tables with a primary
// key and two indexes each, a few hundred rows in one in ten and two of 200 and 800
// thousand rows, 2 cores, 4 jobs, medians of 4 alternating series: definitions in two
// runs then one -j4 pass 16.0 s; plan 2 with two serial runs 14.9 s.
func PlanSpooled(toc []pg.TOCEntry, listed map[int]bool, archiveSize int64, jobs int, walMinimal bool) []Stage {
	var plan []Stage
	if jobs <= 1 || walMinimal {
		plan = []Stage{{{Name: "archive", Jobs: max(jobs, 1)}}}
	} else if split, ok := splitTables(toc, listed, archiveSize, jobs); ok {
		plan = split
	} else {
		plan = []Stage{
			{{Name: "definitions", Sections: []string{"pre-data"}, Jobs: 1}},
			{{Name: "data and indexes", Sections: []string{"data", "post-data"}, Jobs: jobs}},
		}
	}
	if early, rest := SplitEarly(toc, listed); early != nil {
		return earlyFirst(plan, early, rest)
	}
	return plan
}

// earlyFirst is plan after a first run of the early definitions, which pins the
// functions' search paths after it; the runs of plan restore the rest.
func earlyFirst(plan []Stage, early, rest []int) []Stage {
	isEarly := make(map[int]bool, len(early))
	for _, id := range early {
		isEarly[id] = true
	}
	out := []Stage{{{Name: "functions and types", IDs: early, Jobs: 1, PinAfter: true}}}
	for _, stage := range plan {
		var runs Stage
		for _, run := range stage {
			if run.IDs == nil {
				run.IDs = rest
			} else {
				run.IDs = slices.DeleteFunc(slices.Clone(run.IDs), func(id int) bool { return isEarly[id] })
			}
			if len(run.IDs) > 0 {
				runs = append(runs, run)
			}
		}
		if len(runs) > 0 {
			out = append(out, runs)
		}
	}
	return out
}

// placement of an entry in splitTables.
const (
	placeFirst = -1
	placeBig   = -2
	placeLast  = -3
	placeNone  = -4 // not listed
)

// splitTables is plan 2 of PlanSpooled, or false when it does not apply: too few small
// tables, or no data offsets (the sizes are unknown).
//
// Tables tie together through the pre-data entries that depend on several of them (a
// view, an inherited or partitioned table, a function over a row type), which must be
// created in one run: such tables form one component. An entry is on the components it
// depends on, directly or through other entries; a data or post-data entry on two
// components, or on none, waits for the last stage.
func splitTables(toc []pg.TOCEntry, listed map[int]bool, archiveSize int64, jobs int) ([]Stage, bool) {
	n := len(toc)
	pos := make(map[int]int, n)
	section := make([]int, n)
	s := pg.SectionPreData
	for i, e := range toc {
		pos[e.ID] = i
		if e.Section != pg.SectionNone {
			s = e.Section
		}
		section[i] = s
	}
	pre := func(i int) bool { return section[i] == pg.SectionPreData }

	// Components: union-find over the pre-data entries on tables.
	parent := make([]int, n)
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	onTable := make([]bool, n)
	for i, e := range toc {
		onTable[i] = e.Desc == "TABLE" && pre(i)
	}
	// Dependencies point backwards in pg_dump's order; loop until settled in case one
	// does not.
	for changed := true; changed; {
		changed = false
		for i, e := range toc {
			if !pre(i) {
				continue
			}
			for _, d := range e.Deps {
				if j, ok := pos[d]; ok && pre(j) && onTable[j] {
					if !onTable[i] {
						onTable[i], changed = true, true
					}
					if a, b := find(i), find(j); a != b {
						parent[a] = b
					}
				}
			}
		}
	}

	// comp: the component a data or post-data entry is on; none (-1) or several (-2).
	const none, several = -1, -2
	join := func(a, b int) int {
		switch {
		case a == none:
			return b
		case b == none || a == b:
			return a
		}
		return several
	}
	comp := make([]int, n)
	state := make([]uint8, n) // 0 unknown, 1 being computed, 2 known
	var compOf func(i int) int
	compOf = func(i int) int {
		switch {
		case pre(i) && onTable[i]:
			return find(i)
		case pre(i):
			return none
		case state[i] == 2:
			return comp[i]
		case state[i] == 1:
			return several // a cycle: pg_dump writes none; keep it for the last stage
		}
		state[i] = 1
		c := none
		for _, d := range toc[i].Deps {
			if j, ok := pos[d]; ok {
				c = join(c, compOf(j))
			}
		}
		comp[i], state[i] = c, 2
		return c
	}

	// Data sizes from the offsets: a block ends where the next begins.
	type block struct {
		off int64
		i   int
	}
	var blocks []block
	for i, e := range toc {
		if e.DataOffset > 0 {
			blocks = append(blocks, block{e.DataOffset, i})
		}
	}
	if len(blocks) == 0 {
		return nil, false
	}
	slices.SortFunc(blocks, func(a, b block) int { return cmp.Compare(a.off, b.off) })
	data := map[int]int64{}    // component → data bytes
	entries := map[int]int64{} // component → listed entries
	for k, b := range blocks {
		end := archiveSize
		if k+1 < len(blocks) {
			end = blocks[k+1].off
		}
		if c := compOf(b.i); c >= 0 && listed[toc[b.i].ID] {
			data[c] += max(end-b.off, 0)
		}
	}
	smallTables := 0
	for i, e := range toc {
		if !listed[e.ID] {
			continue
		}
		c := compOf(i)
		if c >= 0 {
			entries[c]++
		}
		if e.Desc == "TABLE" && pre(i) && data[c] < bigData {
			smallTables++
		}
	}
	if smallTables < minSplitTables {
		return nil, false
	}

	// Place every listed entry.
	place := make([]int, n)
	hasBig := false
	for i, e := range toc {
		c := compOf(i)
		switch {
		case !listed[e.ID]:
			place[i] = placeNone
		case pre(i) && c < 0, pre(i) && data[c] >= bigData:
			place[i] = placeFirst
		case c < 0:
			place[i] = placeLast
		case data[c] >= bigData:
			place[i], hasBig = placeBig, true
		default:
			place[i] = c
		}
	}
	bigJobs := 0
	if hasBig {
		bigJobs = max(jobs/2, 1)
	}
	runs := max(jobs-bigJobs, 1)

	// Deal the small components to the serial runs, the costliest first, each to the
	// run with the least so far.
	var comps []int
	for c := range entries {
		if data[c] < bigData {
			comps = append(comps, c)
		}
	}
	cost := func(c int) int64 { return entries[c]*entryBytes + data[c] }
	slices.SortFunc(comps, func(a, b int) int {
		return cmp.Or(cmp.Compare(cost(b), cost(a)), cmp.Compare(a, b))
	})
	if len(comps) < 2 { // one serial run of every small table: slower than the parallel one
		return nil, false
	}
	runs = min(runs, len(comps))
	load := make([]int64, runs)
	run := map[int]int{}
	for _, c := range comps {
		r := 0
		for k := range load {
			if load[k] < load[r] {
				r = k
			}
		}
		run[c], load[r] = r, load[r]+cost(c)
	}
	for i, p := range place {
		if p >= 0 {
			place[i] = run[p]
		}
	}
	// An entry restored side by side with one it depends on waits for the last stage,
	// and so does what depends on it.
	for changed := true; changed; {
		changed = false
		for i := range toc {
			if place[i] == placeNone || place[i] == placeLast || pre(i) {
				continue
			}
			for _, d := range toc[i].Deps {
				j, ok := pos[d]
				if ok && place[j] != placeNone && place[j] != placeFirst && place[j] != place[i] {
					place[i], changed = placeLast, true
					break
				}
			}
		}
	}

	first, big, last := RestoreRun{Name: "definitions", Jobs: 1}, RestoreRun{Name: "big tables", Jobs: bigJobs}, RestoreRun{Name: "across tables", Jobs: jobs}
	serial := make([]RestoreRun, runs)
	for k := range serial {
		serial[k] = RestoreRun{Name: "small tables " + strconv.Itoa(k+1), Jobs: 1}
	}
	for i, e := range toc {
		switch p := place[i]; p {
		case placeNone:
		case placeFirst:
			first.IDs = append(first.IDs, e.ID)
		case placeBig:
			big.IDs = append(big.IDs, e.ID)
			if e.Desc == "TABLE DATA" {
				big.Tables = append(big.Tables, TableName{e.Namespace, e.Tag})
			}
		case placeLast:
			last.IDs = append(last.IDs, e.ID)
		default:
			serial[p].IDs = append(serial[p].IDs, e.ID)
		}
	}
	var plan []Stage
	if len(first.IDs) > 0 {
		plan = append(plan, Stage{first})
	}
	var side Stage
	if len(big.IDs) > 0 {
		side = append(side, big)
	}
	for _, r := range serial {
		if len(r.IDs) > 0 {
			side = append(side, r)
		}
	}
	plan = append(plan, side)
	if len(last.IDs) > 0 {
		plan = append(plan, Stage{last})
	}
	return plan, true
}

// describe describes a plan for the log: its stages, each run with its entries and jobs.
func describe(plan []Stage) []string {
	var out []string
	for _, s := range plan {
		var runs []string
		for _, r := range s {
			n := "all"
			if r.IDs != nil {
				n = strconv.Itoa(len(r.IDs))
			}
			runs = append(runs, fmt.Sprintf("%s: %s entries, %d jobs", r.Name, n, r.Jobs))
		}
		out = append(out, strings.Join(runs, " | "))
	}
	return out
}

// SplitEarly is the listed dump ids of the definitions that depend on no table
// (pg.EarlyDefinitions), and the other listed ids, each in the archive's order; nil
// and nil when there is no function among the former, or nothing after them.
func SplitEarly(toc []pg.TOCEntry, listed map[int]bool) (early, rest []int) {
	ids := pg.EarlyDefinitions(toc)
	if ids == nil {
		return nil, nil
	}
	isEarly := make(map[int]bool, len(ids))
	for _, id := range ids {
		isEarly[id] = true
	}
	for _, e := range toc {
		switch {
		case !listed[e.ID]:
		case isEarly[e.ID]:
			early = append(early, e.ID)
		default:
			rest = append(rest, e.ID)
		}
	}
	if early == nil || rest == nil {
		return nil, nil
	}
	return early, rest
}

// ListIDs are the dump ids a pg_restore --use-list file names ("208; 1259 16667 TABLE
// public sa1010 erp"), in its order.
func ListIDs(list string) []int {
	var ids []int
	for line := range strings.Lines(list) {
		if id, ok := listID(line); ok {
			ids = append(ids, id)
		}
	}
	return ids
}

// SubList is the part of a --use-list file that names the given dump ids, in the
// file's order.
func SubList(list string, ids []int) string {
	keep := map[int]bool{}
	for _, id := range ids {
		keep[id] = true
	}
	var b strings.Builder
	for line := range strings.Lines(list) {
		if id, ok := listID(line); ok && keep[id] {
			b.WriteString(line)
		}
	}
	return b.String()
}

// listID is the dump id a line of a --use-list file names; a comment (";…") names none.
func listID(line string) (int, bool) {
	id, _, ok := strings.Cut(line, ";")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(id))
	return n, err == nil
}
