//go:build unix

package seal

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestCreateFileMode: a key file is created 0600 under any umask.
func TestCreateFileMode(t *testing.T) {
	for _, mask := range []int{0o022, 0o077, 0o277} {
		old := syscall.Umask(mask)
		p := filepath.Join(t.TempDir(), "secret.key")
		_, err := CreateFile(p)
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("umask %04o: key file mode %04o, want 0600", mask, fi.Mode().Perm())
		}
		if _, err := LoadFile(p); err != nil {
			t.Errorf("umask %04o: %v", mask, err)
		}
	}
}
