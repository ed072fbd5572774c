package spectest

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the repository, two levels above this package.
const repoRoot = "../.."

// specSections are the numbered sections of docs/spec.md. Code, tests and docs cite
// them as "SPEC §n", so they are never renumbered: one may be added, none moved.
var specSections = []string{
	"1", "2",
	"3", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6",
	"4", "4.1", "4.2", "4.3", "4.4", "4.5",
	"5", "5.1", "5.2", "5.3", "5.4",
	"6", "7", "8", "9", "10",
}

var (
	headingRE  = regexp.MustCompile(`(?m)^#{2,3} (\d+(?:\.\d+)?)\.? `)
	citationRE = regexp.MustCompile(`SPEC §(\d+(?:\.\d+)?)`)
	// A bare §n inside spec.md, except the ends of a range (§8–§10).
	bareRE = regexp.MustCompile(`(^|[^–])§(\d+(?:\.\d+)?)(?:[^–\d.]|\.[^\d]|$)`)
)

// TestSpecSectionsAreCited: docs/spec.md has exactly the sections the project
// cites, and every "SPEC §n" in the repository names one of them, so that a
// reader of a comment, a test or a document finds the rule it points at.
func TestSpecSectionsAreCited(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "docs", "spec.md"))
	if err != nil {
		t.Fatalf("the contract must be in the repository: %v", err)
	}
	spec := string(b)
	var got []string
	for _, m := range headingRE.FindAllStringSubmatch(spec, -1) {
		got = append(got, m[1])
	}
	if !slices.Equal(got, specSections) {
		t.Fatalf("docs/spec.md has sections %v, want %v", got, specSections)
	}
	have := map[string]bool{}
	for _, s := range got {
		have[s] = true
	}
	for _, m := range bareRE.FindAllStringSubmatch(spec, -1) {
		if !have[m[2]] {
			t.Errorf("docs/spec.md cites §%s, which it does not have", m[2])
		}
	}
	n := 0
	err = filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name != "." && name != ".." && strings.HasPrefix(name, ".") || name == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".md", ".tmpl", ".sql":
		default:
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range citationRE.FindAllStringSubmatch(string(b), -1) {
			n++
			if !have[m[1]] {
				t.Errorf("%s cites SPEC §%s, which docs/spec.md does not have", path, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 50 {
		t.Fatalf("found only %d citations of SPEC §n: is the walk reading the repository?", n)
	}
}

// TestNoDocumentPointsOutsideTheRepository: a user who clones the repository has
// every document it refers to; none sends them to a SPEC.md beside it.
func TestNoDocumentPointsOutsideTheRepository(t *testing.T) {
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name != "." && name != ".." && strings.HasPrefix(name, ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if ext := filepath.Ext(path); ext != ".md" && ext != ".tmpl" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, bad := range []string{"../shared", "shared/SPEC", "SPEC.md", "beside the repository"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s refers to %q, which a clone does not have: point at docs/spec.md", path, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
