package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/postgres"
)

// metricSynchronousReplication is the gauge saying whether PostgreSQL commits wait
// for a synchronous standby (docs/operations.md, "High availability").
const metricSynchronousReplication = "daodian_store_synchronous_replication"

// replicationCheckInterval is how often serve reads the replication settings
// again: they change on a reload of the server's configuration, and on a failover
// (a promoted standby usually has no synchronous standby of its own).
const replicationCheckInterval = 10 * time.Second

// watchReplication reports, for a PostgreSQL store, whether its commits wait for
// a synchronous standby: one line on w now, the gauge on reg now and every
// replicationCheckInterval until ctx ends, and a log line at each change. Other
// stores have no replication and get neither.
func watchReplication(ctx context.Context, w io.Writer, reg prometheus.Registerer, logger *slog.Logger, store daodian.Store) {
	pg, ok := store.(*postgres.Store)
	if !ok {
		return
	}
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: metricSynchronousReplication,
		Help: "1 when PostgreSQL commits wait for a synchronous standby (synchronous_standby_names is set), so that a failover to it loses no acknowledged answer; 0 when they do not. Read at start and every 10 s. PostgreSQL only.",
	})
	reg.MustRegister(gauge)
	read := func() (postgres.Replication, error) {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return pg.Replication(rctx)
	}
	r, err := read()
	if err != nil {
		fmt.Fprintf(w, "daodian: warning: cannot read the PostgreSQL replication settings (%v); %s reads 0 until they are read\n", err, metricSynchronousReplication)
	} else {
		fmt.Fprintln(w, "daodian: "+describeReplication(r))
		gauge.Set(boolGauge(r.Synchronous()))
	}
	known := err == nil
	go func() {
		t := time.NewTicker(replicationCheckInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			next, err := read()
			if err != nil {
				// The store is unreachable: requests and /readyz say so; the
				// last value read stays.
				continue
			}
			gauge.Set(boolGauge(next.Synchronous()))
			if !known || next != r {
				level := slog.LevelInfo
				if !next.Synchronous() {
					level = slog.LevelWarn
				}
				logger.Log(ctx, level, "PostgreSQL replication settings changed: "+describeReplication(next),
					"synchronous_standby_names", next.SynchronousStandbyNames, "synchronous", next.Synchronous())
			}
			r, known = next, true
		}
	}()
}

// describeReplication says what a failover would cost under r.
func describeReplication(r postgres.Replication) string {
	if r.Synchronous() {
		return fmt.Sprintf("PostgreSQL commits wait for a synchronous standby (synchronous_standby_names=%q): a failover to it loses no acknowledged answer", r.SynchronousStandbyNames)
	}
	why := "synchronous_standby_names is empty"
	if r.SynchronousStandbyNames != "" {
		why = "synchronous_commit=" + r.SynchronousCommit
	}
	return "warning: PostgreSQL commits wait for no standby (" + why + "): an answer is durable on the primary alone, and a failover may lose acknowledged answers (docs/operations.md, High availability)"
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
