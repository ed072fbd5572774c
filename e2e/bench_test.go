package e2e

import (
	"encoding/json"
	"os/exec"
	"testing"

	"github.com/daodian/daodian/internal/testenv"
)

// TestBenchRuns runs `daodian bench` as a user does, briefly: it issues tickets,
// starts its own server, drives it and the baseline with signed requests, and
// audits the ledger. Every request must be answered without error (a signature
// the gateway rejects would count as errors) and the audit must be clean.
func TestBenchRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes for a few seconds")
	}
	out, err := testenv.Command(t, "bench", "--duration", "500ms", "--tickets", "200",
		"--concurrency", "4", "--json").Output()
	if err != nil {
		t.Fatalf("daodian bench: %v\n%s", err, stderrOf(err))
	}
	var res struct {
		Requests        int64   `json:"requests"`
		Errors          int64   `json:"errors"`
		FirstError      string  `json:"first_error"`
		UsesPerS        float64 `json:"uses_per_s"`
		ReversalsPerS   float64 `json:"reversals_per_s"`
		BaselinePerS    float64 `json:"baseline_per_s"`
		AuditViolations int     `json:"audit_violations"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("bench --json printed %q: %v", out, err)
	}
	if res.Errors != 0 || res.AuditViolations != 0 {
		t.Fatalf("bench: %d errors (first %q), %d audit violations", res.Errors, res.FirstError, res.AuditViolations)
	}
	if res.Requests == 0 || res.UsesPerS == 0 || res.ReversalsPerS == 0 || res.BaselinePerS == 0 {
		t.Fatalf("bench measured nothing: %+v", res)
	}
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
