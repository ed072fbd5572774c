//go:build unix

package seal

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/daodian/daodian/internal/testio"
)

// TestCreateFileMode: a key file is created 0600 under any umask.
func TestCreateFileMode(t *testing.T) {
	for _, mask := range []int{0o022, 0o077, 0o277} {
		t.Run(fmt.Sprintf("%04o", mask), func(t *testing.T) {
			testio.Umask(t, mask)
			p := filepath.Join(t.TempDir(), "secret.key")
			if _, err := CreateFile(p); err != nil {
				t.Fatal(err)
			}
			testio.WantPrivate(t, p)
			if _, err := LoadFile(p); err != nil {
				t.Fatal(err)
			}
		})
	}
}
