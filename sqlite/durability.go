package sqlite

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/daodian/daodian"
)

// Durability is pipelined. The connections run with synchronous=NORMAL, so
// COMMIT writes the batch's WAL frames but does not fsync them; the writer
// hands the batch to the syncer and starts the next batch at once, while the
// syncer fdatasyncs the WAL file and only then answers the batch's Updates.
// One fdatasync covers every batch committed before it started, so the writer
// never waits for the disk. In BenchmarkUpdate (2 cores, 64 callers) that is
// 25% to 35% more Updates/s than SQLite's synchronous=FULL, where COMMIT itself
// waits for the fsync, at the same CPU cost per Update and the same p99.
//
// The guarantee is the same as synchronous=FULL: an Update returns only after
// its frames are on stable storage. Readers may see a committed batch before
// it is synced, so a View does not return until every commit it could have
// seen is synced too; nothing a caller is told can be lost by a power failure.
// SQLite keeps the file consistent under synchronous=NORMAL in WAL mode (it
// syncs the WAL before each checkpoint and the database after), and the WAL
// header it rewrites when the log restarts is flushed by the same fdatasync as
// the frames that follow it.
//
// Options.SerialSync turns this off: COMMIT fsyncs (synchronous=FULL) and the
// writer answers directly.

// syncRecord is one committed batch waiting for the WAL to be synced.
type syncRecord struct {
	seq   uint64
	ops   []*op // nil for a failed COMMIT: only seq matters then
	ran   int   // Updates run in the COMMIT; 0 for ops answered without one
	start time.Time
}

// syncer makes committed batches durable and answers them.
type syncer struct {
	wal      *os.File
	syncFile func(*os.File) error
	onCommit func(batchSize int, dur time.Duration)

	mu    sync.Mutex
	queue []syncRecord
	spare []syncRecord
	kick  chan struct{} // capacity 1
	// busy is set from push until a flush leaves nothing queued; idle
	// (capacity 1) is signalled when it clears. The writer keeps its batch
	// open while the syncer is busy: a commit made now would wait for the
	// running fdatasync anyway, and every op it adds meanwhile shares the next
	// one (see writer.extend).
	busy atomic.Bool
	idle chan struct{}
	stop chan struct{}
	done chan struct{}

	// committed is the sequence number of the last COMMIT the writer started;
	// a commit becomes visible to readers only after its number is taken.
	// synced is the last one known durable.
	committed atomic.Uint64
	synced    atomic.Uint64
	waitMu    sync.Mutex
	waitCh    chan struct{} // closed and replaced whenever synced moves

	failed atomic.Pointer[error]
}

func newSyncer(walPath string, onCommit func(int, time.Duration), syncFile func(*os.File) error) (*syncer, error) {
	f, err := os.OpenFile(walPath, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open WAL for syncing: %w", err)
	}
	if syncFile == nil {
		syncFile = fdatasync
	}
	y := &syncer{
		wal:      f,
		syncFile: syncFile,
		onCommit: onCommit,
		kick:     make(chan struct{}, 1),
		idle:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		waitCh:   make(chan struct{}),
	}
	return y, nil
}

// begin numbers the COMMIT the writer is about to run.
func (y *syncer) begin() uint64 { return y.committed.Add(1) }

// push hands a COMMIT to the syncer; ops are answered once it is durable.
func (y *syncer) push(r syncRecord) {
	y.mu.Lock()
	y.queue = append(y.queue, r)
	y.busy.Store(true)
	y.mu.Unlock()
	select {
	case y.kick <- struct{}{}:
	default:
	}
}

func (y *syncer) loop() {
	defer close(y.done)
	for {
		select {
		case <-y.kick:
		case <-y.stop:
			y.flush() // the writer has stopped: nothing more will be pushed
			return
		}
		y.flush()
	}
}

// flush syncs the WAL once for everything pushed so far and answers it.
func (y *syncer) flush() {
	y.mu.Lock()
	recs := y.queue
	y.queue, y.spare = y.spare[:0], nil
	y.mu.Unlock()
	if len(recs) == 0 {
		y.markIdle()
		return
	}
	err := y.failure()
	if err == nil {
		if err = y.syncFile(y.wal); err != nil {
			// After a failed fsync the kernel may have dropped the dirty pages:
			// what readers see may not be what is on disk. Nothing can be
			// trusted until a restart recovers from the file.
			err = fmt.Errorf("sqlite: sync WAL: %w (the store refuses all work until restarted)", err)
			y.failed.Store(&err)
		}
	}
	now := time.Now()
	for _, r := range recs {
		if err == nil && r.ran > 0 && y.onCommit != nil {
			y.onCommit(r.ran, now.Sub(r.start))
		}
		if err != nil {
			for _, o := range r.ops {
				o.done <- daodian.Transient(err)
			}
			continue
		}
		answer(r.ops)
	}
	if err == nil {
		y.synced.Store(recs[len(recs)-1].seq)
	}
	// Wake the Views waiting for durability: they see the new mark, or the
	// failure.
	y.waitMu.Lock()
	close(y.waitCh)
	y.waitCh = make(chan struct{})
	y.waitMu.Unlock()
	clear(recs)
	y.mu.Lock()
	y.spare = recs[:0]
	y.mu.Unlock()
	y.markIdle()
}

// markIdle clears busy if nothing is queued, and wakes a writer waiting for it.
func (y *syncer) markIdle() {
	y.mu.Lock()
	defer y.mu.Unlock()
	if len(y.queue) > 0 {
		return // the loop is kicked: it flushes again at once
	}
	y.busy.Store(false)
	select {
	case y.idle <- struct{}{}:
	default:
	}
}

// failure is the error that stopped the store, if any.
func (y *syncer) failure() error {
	if p := y.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// waitDurable waits until every commit numbered up to seq is synced.
func (y *syncer) waitDurable(ctx context.Context, seq uint64) error {
	for {
		if y.synced.Load() >= seq {
			return nil
		}
		if err := y.failure(); err != nil {
			return daodian.Transient(err)
		}
		y.waitMu.Lock()
		ch := y.waitCh
		y.waitMu.Unlock()
		if y.synced.Load() >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return daodian.Transient(ctx.Err())
		}
	}
}

func (y *syncer) close() error {
	close(y.stop)
	<-y.done
	return y.wal.Close()
}

// Checkpoints copy the WAL back into the database file. SQLite's automatic
// checkpoint runs inside the COMMIT that crosses the threshold, on the writer:
// it stalled the writer for milliseconds every few batches (13% to 30% of its
// time in BenchmarkUpdate). Here a checkpointer goroutine runs PASSIVE checkpoints on its
// own connection, concurrently with the writer. A passive checkpoint cannot
// restart the log while the writer keeps appending to it, though: SQLite
// rewinds the WAL only when a write transaction starts on a fully
// checkpointed log. So once the WAL passes Options.CheckpointPages, the
// checkpointer asks the writer to checkpoint the (short) tail itself between
// two batches; its next batch then starts the WAL over.

type checkpointer struct {
	s            *session
	interval     time.Duration // see Options.CheckpointInterval
	restartPages int64
	tail         *atomic.Bool // set to ask the writer for a tail checkpoint
	kick         chan struct{}
	stop         chan struct{}
	done         chan struct{}
	logf         func(error) // reports a failed checkpoint
}

func (c *checkpointer) loop() {
	defer close(c.done)
	timer := time.NewTimer(c.interval)
	defer timer.Stop()
	for {
		select {
		case <-c.kick:
		case <-c.stop:
			return
		}
		logFrames, err := c.checkpoint()
		if err == nil && logFrames >= c.restartPages {
			// Catch up once more at once, so that the tail the writer has to
			// copy (while Updates wait) is only what arrived meanwhile.
			_, err = c.checkpoint()
			c.tail.Store(true)
		}
		if err != nil {
			c.logf(err)
		}
		timer.Reset(c.interval)
		select {
		case <-timer.C:
		case <-c.stop:
			return
		}
	}
}

// checkpoint runs a passive checkpoint and returns the size of the WAL in
// frames.
func (c *checkpointer) checkpoint() (logFrames int64, err error) {
	err = c.s.raw(func() error {
		row, err := c.s.queryRow(c.s.checkpoint, 3)
		if err != nil {
			return err
		}
		logFrames = asInt(row[1])
		return nil
	})
	return logFrames, err
}

func (c *checkpointer) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// stopLoop stops the background checkpoints; Store.release closes the
// connection.
func (c *checkpointer) stopLoop() {
	close(c.stop)
	<-c.done
}
