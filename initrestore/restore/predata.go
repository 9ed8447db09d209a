package restore

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/smartbackup/smartbackup/internal/pg"
)

// minSplitTables is the fewest tables worth splitting the definitions for: each
// concurrent pg_restore reads the whole table of contents and opens a connection.
const minSplitTables = 64

// PreDataSplit is how the definitions (pre-data) of a spooled archive are restored:
// First serially, then the Groups side by side, one pg_restore each. An entry of a
// group depends only on entries of First and of its own group; each keeps the
// archive's order, which pg_dump sorted by dependency.
type PreDataSplit struct {
	First  []int   // dump ids
	Groups [][]int // dump ids
}

// SplitPreData splits the pre-data entries of listed (the dump ids the restore list
// keeps) for at most n concurrent pg_restore runs, or returns false when one run is
// as good (n < 2, few tables, or tables all tied together).
//
// pg_restore creates the definitions one statement at a time whatever its --jobs; on
// an ERP company of 3,000 tables that is 3,000 CREATE TABLE of a millisecond or two
// each on the server. Tables are independent of each other unless an entry ties them
// (a view, an inherited or partitioned table, a function over a row type): First is
// every entry that depends on no table (schemas, types, functions, sequences),
// restored before anything else, and the rest, the tables and what depends on them,
// falls into groups of entries connected by dependencies, dealt to n runs. An entry of
// no section (a comment, an ACL) belongs to the section of the entry before it, as
// pg_restore decides.
func SplitPreData(toc []pg.TOCEntry, listed map[int]bool, n int) (PreDataSplit, bool) {
	if n < 2 {
		return PreDataSplit{}, false
	}
	pos := map[int]int{}
	var pre []pg.TOCEntry
	section := pg.SectionPreData
	for _, e := range toc {
		if e.Section != pg.SectionNone {
			section = e.Section
		}
		if section == pg.SectionPreData && listed[e.ID] {
			pos[e.ID] = len(pre)
			pre = append(pre, e)
		}
	}
	// onTable: the entry is a table or depends, through listed pre-data entries, on
	// one. Dependencies point backwards in pg_dump's order; loop until settled in case
	// one does not.
	onTable := make([]bool, len(pre))
	tables := 0
	for i, e := range pre {
		if e.Desc == "TABLE" {
			onTable[i] = true
			tables++
		}
	}
	if tables < minSplitTables {
		return PreDataSplit{}, false
	}
	for changed := true; changed; {
		changed = false
		for i, e := range pre {
			if onTable[i] {
				continue
			}
			for _, d := range e.Deps {
				if j, ok := pos[d]; ok && onTable[j] {
					onTable[i], changed = true, true
					break
				}
			}
		}
	}
	// Components of the entries on tables, joined by their dependencies.
	parent := make([]int, len(pre))
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
	var split PreDataSplit
	for i, e := range pre {
		if !onTable[i] {
			split.First = append(split.First, e.ID)
			continue
		}
		for _, d := range e.Deps {
			if j, ok := pos[d]; ok && onTable[j] {
				parent[find(i)] = find(j)
			}
		}
	}
	components := map[int][]int{} // root → positions, in order
	var roots []int
	for i := range pre {
		if !onTable[i] {
			continue
		}
		r := find(i)
		if _, seen := components[r]; !seen {
			roots = append(roots, r)
		}
		components[r] = append(components[r], i)
	}
	if len(roots) < 2 {
		return PreDataSplit{}, false
	}
	// The largest first, each to the group with the fewest entries so far.
	slices.SortStableFunc(roots, func(a, b int) int { return cmp.Compare(len(components[b]), len(components[a])) })
	groups := make([][]int, min(n, len(roots)))
	for _, r := range roots {
		g := 0
		for k := range groups {
			if len(groups[k]) < len(groups[g]) {
				g = k
			}
		}
		groups[g] = append(groups[g], components[r]...)
	}
	for _, g := range groups {
		slices.Sort(g) // the archive's order
		ids := make([]int, len(g))
		for k, i := range g {
			ids[k] = pre[i].ID
		}
		split.Groups = append(split.Groups, ids)
	}
	return split, true
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
