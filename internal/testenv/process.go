package testenv

import (
	"bytes"
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

// binary is the daodian executable, built once per test binary.
var binary struct {
	mu    sync.Mutex
	main  bool // Main runs the tests: it removes dir at the end
	built bool
	dir   string
	path  string
	err   error
}

// Main runs the tests of a package that uses Binary, Command or StartServe
// and removes the executable Binary built; call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
func Main(m *testing.M) int {
	binary.mu.Lock()
	binary.main = true
	binary.mu.Unlock()
	code := m.Run()
	binary.mu.Lock()
	defer binary.mu.Unlock()
	if binary.dir != "" {
		if err := os.RemoveAll(binary.dir); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		}
	}
	return code
}

// GoTool returns the go command of the toolchain running the tests, or the go
// on PATH; the test is skipped when there is neither.
func GoTool(t testing.TB) string {
	t.Helper()
	g := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(g); err == nil {
		return g
	}
	g, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command in %s nor on PATH", runtime.GOROOT())
	}
	return g
}

// Binary returns the path of a daodian executable built from this module, once
// per test binary, alone in its directory.
func Binary(t testing.TB) string {
	t.Helper()
	gotool := GoTool(t)
	binary.mu.Lock()
	defer binary.mu.Unlock()
	if !binary.main {
		t.Fatal("testenv: Binary needs TestMain to run the tests with testenv.Main, which removes the executable")
	}
	if !binary.built {
		binary.built = true
		binary.dir, binary.err = os.MkdirTemp("", "daodian-testenv-bin-")
		if binary.err == nil {
			binary.path = filepath.Join(binary.dir, "daodian")
			out, err := exec.Command(gotool, "build", "-o", binary.path, "github.com/daodian/daodian/cmd/daodian").CombinedOutput()
			if err != nil {
				binary.err = fmt.Errorf("go build: %v\n%s", err, out)
			}
		}
	}
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

// Environ returns this process's environment without the DAODIAN_ variables,
// so that the daodian processes of a test see only the flags it gives them.
func Environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DAODIAN_") {
			env = append(env, kv)
		}
	}
	return env
}

// Command returns the command that runs the daodian executable (Binary) with
// args, in the environment Environ returns.
func Command(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = Environ()
	return cmd
}

// Command returns the command that runs `daodian args…` on the database.
func (d DB) Command(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	return Command(t, append(append([]string(nil), args...), d.Args()...)...)
}

// ServeOptions start a serve process other than StartServe's.
type ServeOptions struct {
	// Command runs daodian (e.g. go run ./cmd/daodian); nil: Binary.
	Command []string
	// Dir is its working directory; "": the test's.
	Dir string
	// Env is its environment; nil: Environ().
	Env []string
}

// Process is a running `daodian serve`. It runs in a process group of its own,
// which signals reach (a server under go run is a child of go). If it still
// runs when the test ends, it is sent SIGTERM, and SIGKILL after cleanupGrace.
type Process struct {
	Cmd *exec.Cmd
	// URL is the gateway's /router/rest; Base is the server's http://host:port.
	URL, Base string

	exited chan struct{} // closed once the process has exited; err is then set
	err    error

	mu     sync.Mutex
	stderr bytes.Buffer
	stdout bytes.Buffer // serve's log
	found  bool         // serve has said it serves, on ready
	ready  chan string  // the URL serve said it serves on
}

// StartServe starts `daodian serve --addr 127.0.0.1:0 args…` from Binary and
// waits until it listens.
func StartServe(t testing.TB, args ...string) *Process {
	t.Helper()
	return StartServeWith(t, ServeOptions{}, args...)
}

// servingRE finds the line serve writes once it listens.
var servingRE = regexp.MustCompile(`serving on (http://\S+)`)

// startTimeout bounds the wait for serve to listen; under go run it includes
// a build.
const startTimeout = 2 * time.Minute

// cleanupGrace is how long a process still running when its test ends has to
// stop on SIGTERM before it is killed.
const cleanupGrace = 10 * time.Second

// StartServeWith starts `… serve --addr 127.0.0.1:0 args…` as o says and waits
// until it listens.
func StartServeWith(t testing.TB, o ServeOptions, args ...string) *Process {
	t.Helper()
	argv := o.Command
	if argv == nil {
		argv = []string{Binary(t)}
	}
	argv = append(append(append([]string(nil), argv...), "serve", "--addr", "127.0.0.1:0"), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = o.Dir, o.Env
	if cmd.Env == nil {
		cmd.Env = Environ()
	}
	setGroup(cmd)
	p := &Process{Cmd: cmd, exited: make(chan struct{}), ready: make(chan string, 1)}
	// Stderr goes through p.Write, not a pipe: the server never blocks on a
	// full pipe, and Wait returns only once all of it is in p.stderr.
	cmd.Stderr = p
	cmd.Stdout = stdoutOf{p}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		// SIGTERM first: go run removes its build directory only when it ends
		// of itself.
		if p.Signal(syscall.SIGTERM) == nil {
			if exited, _ := p.Wait(cleanupGrace); exited {
				return
			}
		}
		_ = p.Signal(syscall.SIGKILL)
		<-p.exited
	})
	select {
	case p.URL = <-p.ready:
		p.Base = strings.TrimSuffix(p.URL, "/router/rest")
		return p
	case <-p.exited:
		t.Fatalf("%v exited: %v\n%s", argv, p.err, p.Stderr())
	case <-time.After(startTimeout):
		t.Fatalf("%v did not start in %v\n%s", argv, startTimeout, p.Stderr())
	}
	return nil
}

// Write implements io.Writer for the process's standard error.
func (p *Process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	before := p.stderr.Len()
	p.stderr.Write(b)
	// Look only at the lines this write completed, once.
	if !p.found {
		all := p.stderr.Bytes()
		start := bytes.LastIndexByte(all[:before], '\n') + 1
		end := bytes.LastIndexByte(all, '\n') + 1
		if m := servingRE.FindSubmatch(all[start:end]); m != nil {
			p.found = true
			p.ready <- string(m[1])
		}
	}
	return len(b), nil
}

// stdoutOf collects a process's standard output.
type stdoutOf struct{ p *Process }

func (w stdoutOf) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.stdout.Write(b)
}

// Stdout returns what the process has written to its standard output so far:
// serve's log.
func (p *Process) Stdout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String()
}

// Stderr returns what the process has written to its standard error so far.
func (p *Process) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// Signal sends sig to the process's group, unless the process has exited
// (its group id may then be another's).
func (p *Process) Signal(sig syscall.Signal) error {
	select {
	case <-p.exited:
		return os.ErrProcessDone
	default:
	}
	return signalGroup(p.Cmd.Process, sig)
}

// Wait waits up to d for the process to exit and returns its exit error;
// exited is false if it still runs. Wait(0) only looks.
func (p *Process) Wait(d time.Duration) (exited bool, err error) {
	select {
	case <-p.exited:
		return true, p.err
	default:
	}
	select {
	case <-p.exited:
		return true, p.err
	case <-time.After(d):
		return false, nil
	}
}

// Kill kills the process (SIGKILL, as a crash) and waits for it to exit.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9: %v", err)
	}
	<-p.exited
}

// Stop sends SIGTERM and fails the test unless the process exits cleanly
// within 30s.
func (p *Process) Stop(t testing.TB) {
	t.Helper()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM: %v", err)
		return
	}
	switch exited, err := p.Wait(30 * time.Second); {
	case !exited:
		t.Error("daodian serve did not stop within 30s of SIGTERM")
	case err != nil:
		t.Errorf("daodian serve exited uncleanly after SIGTERM: %v\n%s", err, p.Stderr())
	}
}
