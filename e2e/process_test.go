package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the daodian executable built once for the tests that run real
// processes.
var binary struct {
	once sync.Once
	path string
	err  error
	dir  string
}

// daodianBinary builds ./cmd/daodian once per test run.
func daodianBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		binary.dir, binary.err = os.MkdirTemp("", "daodian-e2e-bin-")
		if binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "daodian")
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(gobin); err != nil {
			gobin = "go"
		}
		cmd := exec.Command(gobin, "build", "-o", binary.path, "../cmd/daodian")
		out, err := cmd.CombinedOutput()
		if err != nil {
			binary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

// keyFile is the secret key file of the stores the tests open on PostgreSQL,
// which needs one (SPEC §5.4). TestMain gives it to the daodian processes too,
// as DAODIAN_SECRET_KEY_FILE, so their embedded databases share it as well.
var keyFile string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "daodian-e2e-key-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	keyFile = filepath.Join(dir, "secret.key")
	os.Setenv("DAODIAN_SECRET_KEY_FILE", keyFile)
	code := m.Run()
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	return code
}

// proc is a running `daodian serve`.
type proc struct {
	cmd  *exec.Cmd
	url  string
	done chan error

	mu   sync.Mutex
	tail []string // the lines of its standard error so far
}

// stderr returns what the process has written to its standard error so far.
func (p *proc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

var servingRE = regexp.MustCompile(`serving on (http://\S+)`)

// startServe starts `daodian serve --addr 127.0.0.1:0 args…` and waits until it
// listens. The process is killed when the test ends if still running.
func startServe(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(daodianBinary(t), append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Stdout = nil
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan error, 1)}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.tail = append(p.tail, sc.Text())
			p.mu.Unlock()
			if m := servingRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	select {
	case p.url = <-found:
		return p
	case err := <-p.done:
		t.Fatalf("daodian serve exited: %v\n%s", err, p.stderr())
	case <-time.After(60 * time.Second):
		t.Fatal("daodian serve did not start in 60s")
	}
	return nil
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("daodian serve exited uncleanly after SIGTERM: %v", err)
		}
		p.done <- err
	case <-time.After(30 * time.Second):
		t.Error("daodian serve did not stop within 30s of SIGTERM")
	}
}
