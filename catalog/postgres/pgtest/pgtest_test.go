package pgtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A StallCommits whose process died leaves its standby setting behind;
// the next test process takes it back, unless a live one holds the lock.
func TestResetLeftStall(t *testing.T) {
	u := Base(t)
	ctx := context.Background()
	holder, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	show := func() string {
		var s string
		if err := holder.QueryRow(ctx, `SHOW synchronous_standby_names`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	exec := func(sql string) {
		if _, err := holder.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(fmt.Sprintf(`SELECT pg_advisory_lock(%d)`, int64(stallLock)))
	t.Cleanup(func() { // after the defers: the connection must still be open
		holder.Exec(ctx, `ALTER SYSTEM RESET synchronous_standby_names`)
		holder.Exec(ctx, `SELECT pg_reload_conf()`)
		holder.Close(ctx)
	})
	exec(`ALTER SYSTEM SET synchronous_standby_names = '` + stallStandby + `'`)
	exec(`SELECT pg_reload_conf()`)
	for i := 0; show() != stallStandby; i++ { // the reload takes a moment
		if i == 200 {
			t.Fatal("the server did not take the setting")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resetLeftStall(u)
	if show() != stallStandby {
		t.Fatal("a stall whose holder lives was undone")
	}
	exec(fmt.Sprintf(`SELECT pg_advisory_unlock(%d)`, int64(stallLock)))
	// Now a leftover. (Another package's live StallCommits may take the
	// lock meanwhile; its own undo then resets the setting too.)
	resetLeftStall(u)
	for i := 0; show() == stallStandby; i++ {
		if i == 3000 {
			t.Fatal("the leftover standby setting stayed")
		}
		if i%100 == 99 {
			resetLeftStall(u)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
