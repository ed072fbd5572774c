//go:build unix

package walvfs

import (
	"bufio"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// open opens path in WAL mode with a page cache of cachePages pages, through
// this VFS (wrapped) or SQLite's default, on one connection.
func open(t testing.TB, path string, wrapped bool, cachePages int) *sql.DB {
	t.Helper()
	if err := Register(); err != nil {
		t.Fatal(err)
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(5000)" +
		"&_pragma=cache_size(" + strconv.Itoa(cachePages) + ")&_pragma=wal_autocheckpoint(0)"
	if wrapped {
		dsn += "&vfs=" + Name
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func exec1(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func count(t testing.TB, db *sql.DB) (n, sum int64) {
	t.Helper()
	if err := db.QueryRow(`SELECT count(*), coalesce(sum(v), 0) FROM t`).Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	return n, sum
}

func integrity(t testing.TB, db *sql.DB) {
	t.Helper()
	var res string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check: %q, %v", res, err)
	}
}

// TestCommittedIsVisible: after every COMMIT through this VFS, a connection
// through SQLite's own VFS reads the whole transaction — small ones, ones
// larger than what the VFS holds back, and ones whose pages spill into the
// WAL before they commit (a page cache of 16 pages) — and a transaction rolled
// back after spilling leaves nothing behind.
func TestCommittedIsVisible(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.db")
	w := open(t, path, true, 16)
	exec1(t, w, `CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER NOT NULL, pad BLOB NOT NULL)`)
	exec1(t, w, `CREATE INDEX t_v ON t (v)`)
	r := open(t, path, false, 2000)

	var wantN, wantSum int64
	for i, rows := range []int{1, 3, 50, 400, 2, 3000, 1, 7000, 10} {
		tx, err := w.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for j := range rows {
			v := int64(i*100000 + j)
			// Random-ish keys: the inserts land all over the B-trees.
			if _, err := tx.Exec(`INSERT INTO t (k, v, pad) VALUES (?, ?, zeroblob(300))`, (v*7919)%1000003+int64(i)*1000003, v); err != nil {
				t.Fatal(err)
			}
			wantN++
			wantSum += v
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if n, sum := count(t, r); n != wantN || sum != wantSum {
			t.Fatalf("transaction %d (%d rows): the other connection reads %d rows (sum %d), want %d (sum %d)", i, rows, n, sum, wantN, wantSum)
		}

		// A transaction that spills and is rolled back.
		tx, err = w.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for j := range 2000 {
			if _, err := tx.Exec(`INSERT INTO t (k, v, pad) VALUES (?, 1, zeroblob(300))`, 5000000000+int64(i)*10000+int64(j)); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		if n, sum := count(t, w); n != wantN || sum != wantSum {
			t.Fatalf("after a rollback the writer reads %d rows (sum %d), want %d (sum %d)", n, sum, wantN, wantSum)
		}
	}
	if n, sum := count(t, r); n != wantN || sum != wantSum {
		t.Fatalf("the other connection reads %d rows (sum %d), want %d (sum %d)", n, sum, wantN, wantSum)
	}
	integrity(t, r)
	exec1(t, r, `PRAGMA wal_checkpoint(TRUNCATE)`)
	integrity(t, r)
	integrity(t, w)
}

// TestFewerWrites: transactions of a few rows each, as the store's writer
// commits them, are written with a few writes each instead of two per page.
func TestFewerWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.db")
	w := open(t, path, true, 2000)
	exec1(t, w, `CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER NOT NULL, pad BLOB NOT NULL)`)
	exec1(t, w, `CREATE INDEX t_v ON t (v)`)
	asked, made := writesAsked.Load(), writesMade.Load()
	const commits = 200
	for i := range commits {
		tx, err := w.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for j := range 20 {
			v := int64(i*20 + j)
			if _, err := tx.Exec(`INSERT INTO t (k, v, pad) VALUES (?, ?, zeroblob(300))`, (v*7919)%1000003, (v*104729)%1000003); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	asked, made = writesAsked.Load()-asked, writesMade.Load()-made
	t.Logf("%d commits: %d WAL writes asked for, %d made", commits, asked, made)
	if made > 3*commits || made*5 > asked {
		t.Errorf("%d commits: %d WAL writes made for %d asked for; want at most three a commit", commits, made, asked)
	}
	integrity(t, open(t, path, false, 2000))
}

// TestKilledAfterCommit: a process killed at any moment loses no transaction
// whose COMMIT returned. A child commits transactions through this VFS and
// prints each one's number after its COMMIT; it is killed (SIGKILL) while it
// runs; the file, read through SQLite's own VFS, holds every transaction
// printed and is intact.
func TestKilledAfterCommit(t *testing.T) {
	if path := os.Getenv("WALVFS_CHILD_DB"); path != "" {
		child(t, path)
		return
	}
	for round := range 3 {
		path := filepath.Join(t.TempDir(), "k.db")
		cmd := exec.Command(os.Args[0], "-test.run", "^TestKilledAfterCommit$")
		cmd.Env = append(os.Environ(), "WALVFS_CHILD_DB="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		last := -1
		deadline := time.Now().Add(time.Duration(300+round*400) * time.Millisecond)
		for sc.Scan() {
			if n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "committed ")); err == nil {
				last = n
			}
			if time.Now().After(deadline) && last >= 0 {
				break
			}
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		// What the child printed after the kill landed: read it all.
		for sc.Scan() {
			if n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "committed ")); err == nil {
				last = n
			}
		}
		_ = cmd.Wait()
		if last < 0 {
			t.Fatalf("round %d: the child committed nothing", round)
		}
		db := open(t, path, false, 2000)
		var maxTx int
		if err := db.QueryRow(`SELECT coalesce(max(tx), -1) FROM t`).Scan(&maxTx); err != nil {
			t.Fatal(err)
		}
		var incomplete int
		if err := db.QueryRow(`SELECT count(*) FROM (SELECT tx FROM t GROUP BY tx HAVING count(*) <> 1 + tx % 300)`).Scan(&incomplete); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed after transaction %d was reported, the file holds up to %d", round, last, maxTx)
		if maxTx < last {
			t.Errorf("round %d: transaction %d was committed and reported, the file holds only up to %d", round, last, maxTx)
		}
		if incomplete != 0 {
			t.Errorf("round %d: %d transactions are in the file only in part", round, incomplete)
		}
		integrity(t, db)
	}
}

// child commits numbered transactions of 1 to 300 rows until it is killed.
func child(t *testing.T, path string) {
	db := open(t, path, true, 64)
	exec1(t, db, `CREATE TABLE t (tx INTEGER NOT NULL, k INTEGER NOT NULL, pad BLOB NOT NULL, PRIMARY KEY (tx, k))`)
	exec1(t, db, `CREATE INDEX t_k ON t (k, tx)`)
	for n := 0; ; n++ {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for k := range 1 + n%300 {
			if _, err := tx.Exec(`INSERT INTO t (tx, k, pad) VALUES (?, ?, zeroblob(200))`, n, (k*7919+n)%100003); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("committed %d\n", n)
		if n%50 == 49 {
			exec1(t, db, `PRAGMA wal_checkpoint(PASSIVE)`)
		}
	}
}
