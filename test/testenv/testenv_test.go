package testenv_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/smartbackup/smartbackup/test/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestPostgresSmoke connects to both test servers and creates a WIN1252 database the way
// the restore does (TEMPLATE template0, a locale compatible with the encoding).
func TestPostgresSmoke(t *testing.T) {
	for _, major := range []int{12, 15} {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) {
			pg := testenv.StartPostgres(t, major)
			conn := pg.Connect(t, "postgres")
			ctx := context.Background()
			var version int
			if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
				t.Fatal(err)
			}
			if version/10000 != major {
				t.Fatalf("server_version_num = %d, want major %d", version, major)
			}
			db := testenv.RandomName("smoke_")
			pg.Exec(t, "postgres", fmt.Sprintf(`CREATE DATABASE %s ENCODING 'WIN1252' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'`, db))
			var enc string
			if err := conn.QueryRow(ctx, "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = $1", db).Scan(&enc); err != nil {
				t.Fatal(err)
			}
			if enc != "WIN1252" {
				t.Fatalf("encoding = %q, want WIN1252", enc)
			}
			// Accented text round-trips through the client's UTF8 into WIN1252.
			pg.Exec(t, db, "CREATE TABLE t (s varchar(20))", "INSERT INTO t VALUES ('AÇÃO João')")
			var s string
			if err := pg.Connect(t, db).QueryRow(ctx, "SELECT s FROM t").Scan(&s); err != nil {
				t.Fatal(err)
			}
			if s != "AÇÃO João" {
				t.Fatalf("read back %q", s)
			}
		})
	}
}

func TestPostgresRejectsWrongPassword(t *testing.T) {
	pg := testenv.StartPostgres(t, 15)
	_, err := pgxConnect(pg.URLAs("postgres", "wrong", "postgres"))
	if err == nil {
		t.Fatal("connected with a wrong password")
	}
}
