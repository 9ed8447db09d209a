// Command dbaccess-standin stands in for the ERP's dbaccess in the end-to-end test: it
// "boots" by connecting to its database with the environment dbaccess gets and
// querying the restored tables, prints what it found, then serves until SIGTERM.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	// Host, port and names go through the parser, so sslmode=prefer's plain-text fallback
	// goes to the same server (setting cfg.Host afterwards would leave the fallbacks on
	// localhost); the password is set on the parsed config and is in no string.
	port, err := strconv.Atoi(os.Getenv("DATABASE_PORT"))
	if err != nil {
		fail(fmt.Errorf("DATABASE_PORT: %w", err))
	}
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=prefer",
		quote(os.Getenv("DATABASE_ENDPOINT")), port, quote(os.Getenv("DATABASE_NAME")), quote(os.Getenv("DATABASE_USER"))))
	if err != nil {
		fail(err)
	}
	cfg.Password = os.Getenv("DATABASE_PASSWORD")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		fail(err)
	}
	var clientes, pedidos int64
	var marker string
	if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM clientes), (SELECT count(*) FROM pedidos), (SELECT nome FROM clientes WHERE id = 1)").Scan(&clientes, &pedidos, &marker); err != nil {
		fail(err)
	}
	fmt.Printf("dbaccess ready: database=%s codepage=%s clientes=%d pedidos=%d cliente1=%q\n",
		cfg.Database, os.Getenv("DATABASE_CODEPAGE"), clientes, pedidos, marker)
	_ = conn.Close(ctx)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	fmt.Println("dbaccess stopping")
}

// quote makes a keyword/value connection-string value of s.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "dbaccess cannot boot:", err)
	os.Exit(1)
}
