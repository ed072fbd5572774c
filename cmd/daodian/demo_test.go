package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSelfCommand: how printed lines start, for each way the program was started.
func TestSelfCommand(t *testing.T) {
	const pkg = "github.com/daodian/daodian/cmd/daodian"
	for _, tc := range []struct {
		name string
		s    self
		want string
	}{
		{"installed, on PATH", self{exe: "/home/u/go/bin/daodian", onPath: true, pkg: pkg}, "daodian"},
		{"go install @version, on PATH", self{exe: "/home/u/go/bin/daodian", onPath: true, pkg: pkg, version: "v1.2.0"}, "daodian"},
		{"go run in the clone's root", self{exe: "/tmp/go-build1/b001/exe/daodian", goRun: true, pkg: pkg, inRoot: true}, "go run ./cmd/daodian"},
		{"go run elsewhere in the clone", self{exe: "/tmp/go-build1/b001/exe/daodian", goRun: true, pkg: pkg}, "go run " + pkg},
		{"go run pkg@version", self{exe: "/tmp/go-build1/b001/exe/daodian", goRun: true, pkg: pkg, version: "v1.2.0", inRoot: true}, "go run " + pkg + "@v1.2.0"},
		{"built, not on PATH", self{exe: "/srv/daodian/daodian", pkg: pkg}, "/srv/daodian/daodian"},
		{"built, path needing quotes", self{exe: "/home/u/my tools/it's/daodian", pkg: pkg}, `'/home/u/my tools/it'\''s/daodian'`},
		{"unknown executable", self{}, "daodian"},
	} {
		if got := tc.s.command(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	for exe, want := range map[string]bool{
		"/tmp/go-build2737046901/b001/exe/daodian":                                                            true,
		"/root/.cache/go-build/ec/ece96c82b24ccc988d03c9e6d8f6d98b8af4280446600875d69ddc7a4d715ca9-d/daodian": true,
		"/home/u/go/bin/daodian":                    false,
		"/tmp/go-build2737046901/b001/daodian.test": false,
		"/srv/exe/daodian":                          false,
		"/srv/ece96c82b24ccc988d03c9e6d8f6d98b8af4280446600875d69ddc7a4d715ca9/daodian": false,
	} {
		if got := isGoRunBinary(exe); got != want {
			t.Errorf("isGoRunBinary(%s) = %v, want %v", exe, got, want)
		}
	}
}

// goTool returns the go command of the toolchain running the tests.
func goTool(t *testing.T) string {
	t.Helper()
	g := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(g); err != nil {
		t.Skipf("no go command at %s", g)
	}
	return g
}

// pathWithout returns the environment with PATH stripped of every directory
// holding a daodian, then prefixed by dirs. The rest stays as the tests run
// (a PATH without a C compiler would turn cgo off and rebuild everything).
func pathWithout(dirs ...string) []string {
	keep := dirs
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if _, err := os.Stat(filepath.Join(d, "daodian")); err != nil {
			keep = append(keep, d)
		}
	}
	env := []string{"PATH=" + strings.Join(keep, string(filepath.ListSeparator))}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "DAODIAN_") {
			env = append(env, kv)
		}
	}
	return env
}

// demoLines starts `args… serve --demo` (in its own process group, which is
// stopped when the test ends) in dir with env, and returns the lines it prints
// for the user to paste.
func demoLines(t *testing.T, dir string, env []string, args ...string) []string {
	t.Helper()
	db := filepath.Join(t.TempDir(), "demo.db")
	cmd := exec.Command(args[0], append(args[1:], "serve", "--demo", "--addr", "127.0.0.1:0", "--db", db)...)
	cmd.Dir, cmd.Env = dir, env
	// go run does not pass SIGTERM on: stop the server through its group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		_ = cmd.Wait()
	})
	type result struct{ try, all []string }
	done := make(chan result, 1)
	go func() {
		var r result
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			l := sc.Text()
			r.all = append(r.all, l)
			switch {
			case l == "try (in another terminal):":
				r.try = []string{}
			case r.try != nil && strings.HasPrefix(l, "  "):
				r.try = append(r.try, strings.TrimSpace(l))
			case strings.Contains(l, "serving on "):
				done <- r
				_, _ = io.Copy(io.Discard, stderr) // the server must never block on a full pipe
				return
			}
		}
		r.try = nil
		done <- r
	}()
	select {
	case r := <-done:
		if r.try == nil {
			t.Fatalf("%v serve --demo printed no lines to paste:\n%s", args, strings.Join(r.all, "\n"))
		}
		return r.try
	case <-time.After(120 * time.Second):
		t.Fatalf("%v serve --demo did not start", args)
	}
	return nil
}

// TestDemoLinesPasteIntoAShell: the lines serve --demo prints start with what
// runs daodian from the user's shell — the installed binary, go run as the
// README's first command uses it, or the binary's path — and work when pasted.
func TestDemoLinesPasteIntoAShell(t *testing.T) {
	goCmd := goTool(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	exe := filepath.Join(bin, "daodian")
	if out, err := exec.Command(goCmd, "build", "-o", exe, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	goBin := filepath.Dir(goCmd)
	elsewhere := t.TempDir()
	for _, tc := range []struct {
		name   string
		dir    string   // where serve runs and the lines are pasted
		path   []string // PATH before the user's own, which loses any daodian
		start  []string
		prefix string
	}{
		{"installed", elsewhere, []string{bin, goBin}, []string{exe}, "daodian "},
		{"go run, as in the README", root, []string{goBin}, []string{goCmd, "run", "./cmd/daodian"}, "go run ./cmd/daodian "},
		{"built, not on PATH", root, []string{goBin}, []string{exe}, exe + " "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := pathWithout(tc.path...)
			lines := demoLines(t, tc.dir, env, tc.start...)
			if len(lines) != 5 {
				t.Fatalf("%d lines to paste, want 5: %q", len(lines), lines)
			}
			for _, l := range lines {
				if !strings.HasPrefix(l, tc.prefix) {
					t.Errorf("line does not start with %q: %s", tc.prefix, l)
				}
			}
			// The first line (taobao.time.get) from another directory for an
			// installed binary, from the clone for go run.
			sh := exec.Command("/bin/sh", "-c", lines[0])
			sh.Dir, sh.Env = tc.dir, env
			out, err := sh.Output()
			if err != nil || !strings.Contains(string(out), "time_get_response") {
				t.Fatalf("%s\n%v\n%s", lines[0], err, out)
			}
		})
	}
}
