package e2e

import (
	"os"
	"testing"

	"github.com/daodian/daodian/internal/testenv"
)

// TestMain runs the tests with testenv, whose daodian executable the tests
// that run real processes share.
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
