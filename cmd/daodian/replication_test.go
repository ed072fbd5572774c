package main

import (
	"strings"
	"testing"

	"github.com/daodian/daodian/internal/testenv"
	"github.com/daodian/daodian/postgres"
)

// TestServeReportsReplication: on PostgreSQL, serve says at start whether commits
// wait for a synchronous standby and exports it as a gauge; the embedded store
// has no replication and exports no such gauge. The synchronous case, on a
// cluster with a standby, is in e2e.TestFailover.
func TestServeReportsReplication(t *testing.T) {
	t.Run("postgres without a synchronous standby", func(t *testing.T) {
		p := startServeInProcess(t, testenv.NewDB(t, testenv.Postgres).Args()...)
		if out := p.stderr.String(); !strings.Contains(out, "commits wait for no standby (synchronous_standby_names is empty)") ||
			!strings.Contains(out, "a failover may lose acknowledged answers") {
			t.Fatalf("start-up output does not warn of asynchronous replication:\n%s", out)
		}
		if v, ok := metricValue(t, p.base, metricSynchronousReplication); !ok || v != 0 {
			t.Fatalf("%s = %v (present %v), want 0", metricSynchronousReplication, v, ok)
		}
	})
	t.Run("embedded", func(t *testing.T) {
		p := startServeInProcess(t, testenv.NewDB(t, testenv.Embedded).Args()...)
		if strings.Contains(p.stderr.String(), "standby") {
			t.Fatalf("the embedded store reports replication:\n%s", p.stderr.String())
		}
		if _, ok := metricValue(t, p.base, metricSynchronousReplication); ok {
			t.Fatalf("the embedded store exports %s", metricSynchronousReplication)
		}
	})
}

func TestDescribeReplication(t *testing.T) {
	for _, c := range []struct {
		r    postgres.Replication
		want string
	}{
		{postgres.Replication{SynchronousCommit: "on", SynchronousStandbyNames: "*"}, `wait for a synchronous standby (synchronous_standby_names="*")`},
		{postgres.Replication{SynchronousCommit: "on", SynchronousStandbyNames: "FIRST 1 (s1, s2)"}, `wait for a synchronous standby (synchronous_standby_names="FIRST 1 (s1, s2)")`},
		{postgres.Replication{SynchronousCommit: "on"}, "wait for no standby (synchronous_standby_names is empty)"},
		{postgres.Replication{SynchronousCommit: "local", SynchronousStandbyNames: "*"}, "wait for no standby (synchronous_commit=local)"},
	} {
		if got := describeReplication(c.r); !strings.Contains(got, c.want) {
			t.Errorf("%+v: %q, want it to contain %q", c.r, got, c.want)
		}
	}
}
