package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daodian/daodian/internal/testenv"
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

// demoLines starts `command… serve --demo` in dir with env and returns the
// lines it prints for the user to paste.
func demoLines(t *testing.T, dir string, env []string, command ...string) []string {
	t.Helper()
	db := filepath.Join(t.TempDir(), "demo.db")
	p := testenv.StartServeWith(t, testenv.ServeOptions{Command: command, Dir: dir, Env: env}, "--demo", "--db", db)
	var try []string
	for _, l := range strings.Split(p.Stderr(), "\n") {
		switch {
		case l == "try (in another terminal):":
			try = []string{}
		case try != nil && strings.HasPrefix(l, "  "):
			try = append(try, strings.TrimSpace(l))
		case strings.Contains(l, "serving on "):
			if try == nil {
				t.Fatalf("%v serve --demo printed no lines to paste:\n%s", command, p.Stderr())
			}
			return try
		}
	}
	t.Fatalf("%v serve --demo: no serving line in\n%s", command, p.Stderr())
	return nil
}

// TestDemoLinesPasteIntoAShell: the lines serve --demo prints start with what
// runs daodian from the user's shell — the installed binary, go run as the
// README's first command uses it, or the binary's path — and work when pasted.
func TestDemoLinesPasteIntoAShell(t *testing.T) {
	goCmd := testenv.GoTool(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	exe := testenv.Binary(t)
	bin := filepath.Dir(exe) // holds daodian alone
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
