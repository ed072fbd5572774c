package e2e

import (
	"encoding/json"
	"testing"

	"github.com/daodian/daodian/internal/testenv"
)

// TestBenchWithWebhook runs `daodian bench --webhook-receiver fast` briefly:
// the receiver (a process of the bench's own) gets every event committed
// during the run, each delivery verifies, and the lag is reported.
func TestBenchWithWebhook(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes for a few seconds")
	}
	out, err := testenv.Command(t, "bench", "--duration", "500ms", "--tickets", "200",
		"--concurrency", "4", "--json", "--webhook-receiver", "fast").Output()
	if err != nil {
		t.Fatalf("daodian bench: %v\n%s", err, stderrOf(err))
	}
	var res struct {
		Errors      int64    `json:"errors"`
		Receiver    string   `json:"webhook_receiver"`
		Events      int      `json:"webhook_events"`
		Received    int      `json:"webhook_received"`
		Missing     *int     `json:"webhook_missing"`
		Bad         int64    `json:"webhook_bad_signatures"`
		LagMax      *float64 `json:"webhook_lag_max_s"`
		LagSamples  int      `json:"webhook_lag_samples"`
		Drain       *float64 `json:"webhook_drain_s"`
		UsesPerS    float64  `json:"uses_per_s"`
		Reversals   float64  `json:"reversals_per_s"`
		Audit       int      `json:"audit_violations"`
		Deliveries  int64    `json:"webhook_deliveries"`
		BaselinePer float64  `json:"baseline_per_s"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("bench --json printed %q: %v", out, err)
	}
	if res.Errors != 0 || res.Audit != 0 || res.Receiver != "fast" || res.Events == 0 || res.Received != res.Events ||
		res.Missing == nil || *res.Missing != 0 || res.Bad != 0 || res.LagMax == nil || res.Drain == nil || res.Deliveries < int64(res.Events) {
		t.Fatalf("bench with a webhook: %s", out)
	}
}
