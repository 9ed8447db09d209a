package pg_test

import (
	"testing"

	"github.com/smartbackup/smartbackup/internal/pg"
)

func TestLeftOutOfCopies(t *testing.T) {
	for entry, want := range map[string]string{
		"EVENT TRIGGER - audita postgres":                                                 pg.NoEventTriggers,
		"COMMENT - EVENT TRIGGER audita postgres":                                         pg.NoEventTriggers,
		"SECURITY LABEL - EVENT TRIGGER audita postgres":                                  pg.NoEventTriggers,
		"PUBLICATION - cdc postgres":                                                      pg.NoReplication,
		"PUBLICATION TABLE public cdc clientes postgres":                                  pg.NoReplication,
		"PUBLICATION TABLES IN SCHEMA public cdc erp postgres":                            pg.NoReplication,
		"COMMENT - PUBLICATION cdc postgres":                                              pg.NoReplication,
		"SECURITY LABEL - SUBSCRIPTION replica postgres":                                  pg.NoReplication,
		"SUBSCRIPTION - replica postgres":                                                 pg.NoReplication,
		"TABLE public PUBLICATION erp":                                                    "",
		"COMMENT public TABLE PUBLICATION erp":                                            "",
		"TRIGGER public clientes audita erp":                                              "",
		"FUNCTION public audita_ddl() erp":                                                "",
		"COMMENT - SCHEMA public postgres":                                                "",
		"TABLE DATA public \"EVENT TRIGGER - x\" erp":                                     "",
		pg.ListEntry(pg.TOCEntry{Desc: "EVENT TRIGGER", Tag: "audita"}):                   pg.NoEventTriggers,
		pg.ListEntry(pg.TOCEntry{Desc: "COMMENT", Tag: "PUBLICATION cdc"}):                pg.NoReplication,
		pg.ListEntry(pg.TOCEntry{Desc: "TABLE", Namespace: "public", Tag: "PUBLICATION"}): "",
	} {
		why, left := pg.LeftOutOfCopies(entry)
		if why != want || left != (want != "") {
			t.Errorf("LeftOutOfCopies(%q) = %q, %v; want %q", entry, why, left, want)
		}
	}
}
