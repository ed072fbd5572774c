package pgtest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a PostgreSQL cluster of a test's own, made with the Debian tools of
// postgresql-common (pg_createcluster, pg_ctlcluster, pg_dropcluster) on a free
// port of 127.0.0.1, with trust authentication. Tests that stop, promote or
// reconfigure a server need one: the server of DAODIAN_TEST_POSTGRES is shared and
// is never touched beyond the databases tests create in it.
//
// A cluster is dropped (stopped, its data and configuration removed) when the test
// ends, whether it passed, failed or panicked. Its name carries the test process's
// id, so that a later run drops clusters whose process died without cleaning up
// (killed by a timeout, say).
type Cluster struct {
	Version string
	Name    string
	Port    int
	dataDir string
	logFile string
}

// clusterPrefix starts the name of every cluster made here; the process id and a
// random suffix follow.
const clusterPrefix = "daodiant"

// NeedClusters skips the test unless it can make clusters: DAODIAN_TEST_POSTGRES
// is set, the test runs as root (pg_createcluster and pg_dropcluster need it), and
// pg_createcluster is installed. Anything else that goes wrong fails the test.
func NeedClusters(tb testing.TB) {
	tb.Helper()
	if os.Getenv(Env) == "" {
		tb.Skip(Env + " is not set; skipping the tests that make PostgreSQL clusters of their own (set it, and run as root with postgresql-common installed)")
	}
	if os.Geteuid() != 0 {
		tb.Skip("not running as root; skipping the tests that make PostgreSQL clusters of their own (pg_createcluster needs root)")
	}
	if _, err := exec.LookPath("pg_createcluster"); err != nil {
		tb.Skip("pg_createcluster is not installed (Debian's postgresql-common); skipping the tests that make PostgreSQL clusters of their own")
	}
}

// NewCluster creates and starts a cluster of the major version of the server of
// DAODIAN_TEST_POSTGRES. settings go to its postgresql.conf, each "name=value"
// with the value unquoted (pg_createcluster -o quotes what needs it).
func NewCluster(tb testing.TB, settings ...string) *Cluster {
	tb.Helper()
	c := createCluster(tb, settings)
	c.ctl(tb, "start")
	return c
}

// NewStandby creates a streaming standby of primary from a base backup, starts it
// and waits until the primary streams to it. settings go to the standby's
// postgresql.conf, as for NewCluster; the primary's postgresql.conf is not copied,
// so a promoted standby does not wait for a synchronous standby of its own.
func (primary *Cluster) NewStandby(tb testing.TB, settings ...string) *Cluster {
	tb.Helper()
	c := createCluster(tb, settings)
	// pg_basebackup wants an empty directory; keep the one pg_createcluster made,
	// with its owner and mode.
	entries, err := os.ReadDir(c.dataDir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(c.dataDir, e.Name())); err != nil {
			tb.Fatal(err)
		}
	}
	run(tb, "pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(primary.Port), "-U", "postgres",
		"-D", c.dataDir, "-R", "-X", "stream", "-c", "fast")
	chownTree(tb, c.dataDir)
	c.ctl(tb, "start")
	primary.WaitStreaming(tb, 1)
	return c
}

// createCluster creates a stopped cluster whose removal is registered with tb.
func createCluster(tb testing.TB, settings []string) *Cluster {
	tb.Helper()
	NeedClusters(tb)
	sweepOrphans(tb)
	version := serverMajorVersion(tb)
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	c := &Cluster{
		Version: version,
		Name:    fmt.Sprintf("%s%d_%s", clusterPrefix, os.Getpid(), hex.EncodeToString(suffix)),
		Port:    freePort(tb),
	}
	// The server listens on localhost only, its default.
	args := []string{c.Version, c.Name, "--port", strconv.Itoa(c.Port), "--start-conf=manual"}
	for _, s := range settings {
		args = append(args, "-o", s)
	}
	args = append(args, "--", "--auth=trust")
	// Registered first: a pg_createcluster that fails half-way may leave some.
	tb.Cleanup(func() {
		if tb.Failed() {
			c.logTail(tb)
		}
		c.drop(tb)
	})
	run(tb, "pg_createcluster", args...)
	fields := strings.Fields(run(tb, "pg_lsclusters", "--no-header", c.Version, c.Name))
	if len(fields) < 7 {
		tb.Fatalf("pg_lsclusters %s %s: unexpected output %q", c.Version, c.Name, fields)
	}
	c.dataDir, c.logFile = fields[5], fields[6]
	return c
}

// URL returns the URL of a database of the cluster.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// Host returns the cluster's host:port, for multi-host URLs.
func (c *Cluster) Host() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)) }

// Exec runs SQL statements on the cluster's postgres database.
func (c *Cluster) Exec(tb testing.TB, sql ...string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		tb.Fatalf("cluster %s: %v", c.Name, err)
	}
	defer conn.Close(context.Background())
	for _, q := range sql {
		if _, err := conn.Exec(ctx, q); err != nil {
			tb.Fatalf("cluster %s: %s: %v", c.Name, q, err)
		}
	}
}

// StopImmediately stops the server without a shutdown checkpoint, as a crash
// would: sessions are cut at once.
func (c *Cluster) StopImmediately(tb testing.TB) {
	tb.Helper()
	c.ctl(tb, "stop", "-m", "immediate")
}

// Promote makes a standby a primary and waits until it accepts writes.
func (c *Cluster) Promote(tb testing.TB) {
	tb.Helper()
	c.ctl(tb, "promote")
}

// ctl runs pg_ctlcluster on the cluster. It runs pg_ctl itself even where
// systemd runs (pg_ctlcluster would hand start and stop to systemctl, which does
// not manage a cluster whose start.conf is manual).
func (c *Cluster) ctl(tb testing.TB, action string, opts ...string) {
	tb.Helper()
	run(tb, "pg_ctlcluster", append(append([]string{"--skip-systemctl-redirect"}, opts...), c.Version, c.Name, action)...)
}

// WaitStreaming waits until at least n standbys stream from the cluster.
func (c *Cluster) WaitStreaming(tb testing.TB, n int) {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		tb.Fatalf("cluster %s: %v", c.Name, err)
	}
	defer conn.Close(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").Scan(&got); err != nil {
			tb.Fatalf("cluster %s: %v", c.Name, err)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("cluster %s: %d standbys streaming after 30s, want %d", c.Name, got, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// drop stops the cluster and removes it, if it exists.
func (c *Cluster) drop(tb testing.TB) {
	out, err := exec.Command("pg_dropcluster", "--stop", c.Version, c.Name).CombinedOutput()
	if err == nil {
		return
	}
	if _, serr := os.Stat(filepath.Join("/etc/postgresql", c.Version, c.Name)); errors.Is(serr, fs.ErrNotExist) {
		return // never created
	}
	tb.Errorf("pg_dropcluster --stop %s %s: %v\n%s", c.Version, c.Name, err, out)
}

// logTail copies the end of the server's log into the test's output.
func (c *Cluster) logTail(tb testing.TB) {
	b, err := os.ReadFile(c.logFile)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	tb.Logf("last lines of %s:\n%s", c.logFile, strings.Join(lines[max(0, len(lines)-30):], "\n"))
}

// sweepOrphans drops the clusters of test processes that died without dropping
// them. A cluster whose process is alive, or whose name is not one of ours, is
// left alone.
func sweepOrphans(tb testing.TB) {
	out, err := exec.Command("pg_lsclusters", "--no-header").Output()
	if err != nil {
		tb.Fatalf("pg_lsclusters: %v", err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || !strings.HasPrefix(f[1], clusterPrefix) {
			continue
		}
		pidText, _, ok := strings.Cut(strings.TrimPrefix(f[1], clusterPrefix), "_")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		if out, err := exec.Command("pg_dropcluster", "--stop", f[0], f[1]).CombinedOutput(); err != nil {
			tb.Logf("dropping orphaned cluster %s %s: %v\n%s", f[0], f[1], err, out)
		}
	}
}

func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return !errors.Is(err, os.ErrProcessDone) && !errors.Is(err, syscall.ESRCH)
}

// serverMajorVersion returns the major version of the server of
// DAODIAN_TEST_POSTGRES, whose binaries are therefore installed.
func serverMajorVersion(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, os.Getenv(Env))
	if err != nil {
		tb.Fatalf("connect to %s: %v", Env, err)
	}
	defer conn.Close(context.Background())
	var num int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&num); err != nil {
		tb.Fatal(err)
	}
	return strconv.Itoa(num / 10000)
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// chownTree gives a tree written by root to the postgres user, the owner of the
// clusters pg_createcluster makes.
func chownTree(tb testing.TB, dir string) {
	tb.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		tb.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	err = filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// run runs a command and returns its standard output; a failure fails the test
// with the command's output.
func run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	cmd := exec.Command(name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}
