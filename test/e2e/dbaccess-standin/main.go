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
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	port, _ := strconv.Atoi(os.Getenv("DATABASE_PORT"))
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		fail(err)
	}
	cfg.Host, cfg.Port = os.Getenv("DATABASE_ENDPOINT"), uint16(port)
	cfg.User, cfg.Password, cfg.Database = os.Getenv("DATABASE_USER"), os.Getenv("DATABASE_PASSWORD"), os.Getenv("DATABASE_NAME")
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

func fail(err error) {
	fmt.Fprintln(os.Stderr, "dbaccess cannot boot:", err)
	os.Exit(1)
}
