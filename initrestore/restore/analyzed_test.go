package restore

import (
	"fmt"
	"sync"
	"testing"
)

// TestAnalyzedSetConcurrent: the runs of a stage record the tables they analyzed side
// by side. A bare map dies here with "concurrent map writes".
func TestAnalyzedSetConcurrent(t *testing.T) {
	const runs, tables = 8, 2000
	var s analyzedSet
	var wg sync.WaitGroup
	for g := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range tables {
				name := TableName{Schema: "public", Name: fmt.Sprintf("sa%d_%d", g, i)}
				s.add([]TableName{name})
				if !s.has(name) {
					t.Errorf("%v: not recorded right after add", name)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := s.len(); got != runs*tables {
		t.Fatalf("recorded %d tables, want %d", got, runs*tables)
	}
	if s.has(TableName{Schema: "public", Name: "never"}) {
		t.Fatal("a table never added is reported analyzed")
	}
}
