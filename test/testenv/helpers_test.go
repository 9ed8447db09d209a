package testenv_test

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

func pgxConnect(url string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err == nil {
		_ = c.Close(ctx)
	}
	return c, err
}
