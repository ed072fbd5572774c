package seal

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// A key file holds the standard base64 text of KeyLen random bytes, optionally
// followed by a newline: what `openssl rand -base64 32` prints. It must not be
// readable or writable by others, nor writable by its group (group read is
// allowed, for deployments that hand the key to the service through a group);
// on Windows the mode bits mean nothing and are not checked.

// maxKeyFileBytes bounds what is read of a key file: the text of a key is 45
// bytes.
const maxKeyFileBytes = 1 << 10

// looseBits are the mode bits a key file must not have: any access by others,
// write access by the group.
const looseBits fs.FileMode = 0o027

// Errors of Setup, returned wrapped with the key file's path.
var (
	// ErrNoKeyFile: the database's secrets are sealed, and the key file is
	// missing.
	ErrNoKeyFile = errors.New("no such secret key file, but the app secrets of this database are sealed: use the key file they were sealed with (a backup of the database does not contain it)")
	// ErrWrongKey: the key file holds another key than the one the database's
	// secrets are sealed with.
	ErrWrongKey = errors.New("this secret key file does not hold the key the app secrets of this database are sealed with: use the key file they were sealed with (every process on one database uses the same one)")
)

// LoadFile reads the key file at path. A missing file is an error wrapping
// fs.ErrNotExist. Errors never quote the file's content.
func LoadFile(path string) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secret key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secret key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("secret key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&looseBits != 0 {
		return nil, fmt.Errorf("secret key file %s is open to other users (mode %04o): restrict it with chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("secret key file %s: %w", path, err)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(b) > maxKeyFileBytes || len(raw) != KeyLen {
		return nil, fmt.Errorf("secret key file %s does not hold a key: it must hold the base64 text of %d random bytes (as `openssl rand -base64 %d` prints)", path, KeyLen, KeyLen)
	}
	return NewKey(raw)
}

// CreateFile creates a key file at path holding a new random key, with mode
// 0600 whatever the umask, and makes it durable. If another process creates the
// file first, its key is loaded instead: every process ends up with the same
// key, and no process ever reads a half-written file (the file appears, by a
// hard link, only once complete).
func CreateFile(path string) (*Key, error) {
	raw := make([]byte, KeyLen)
	_, _ = rand.Read(raw) // never fails
	key, err := NewKey(raw)
	if err != nil {
		return nil, err
	}
	text := []byte(base64.StdEncoding.EncodeToString(raw) + "\n")
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create secret key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	err = writeSynced(tmp, text)
	if err != nil {
		return nil, fmt.Errorf("create secret key file %s: %w", path, err)
	}
	switch err := os.Link(tmp.Name(), path); {
	case err == nil:
	case errors.Is(err, fs.ErrExist):
		return LoadFile(path)
	default:
		// A file system without hard links: create the file in place. A
		// process racing this one may then see it empty for a moment, and
		// fail with a clear error rather than use another key.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return LoadFile(path)
		}
		if err != nil {
			return nil, fmt.Errorf("create secret key file: %w", err)
		}
		if err := writeSynced(f, text); err != nil {
			_ = os.Remove(path)
			return nil, fmt.Errorf("create secret key file %s: %w", path, err)
		}
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("create secret key file %s: sync its directory: %w", path, err)
	}
	return key, nil
}

// writeSynced gives f mode 0600 (the umask may have taken bits away), writes
// b, syncs and closes it.
func writeSynced(f *os.File, b []byte) error {
	err := f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for syncing there
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Setup returns the key of the key file at path for a database whose stored key
// check is check ("" when it has none: a new database, or one written before
// sealing existed), and, when check is "", the check the caller stores in the
// database in the same transaction as anything it seals.
//
// A missing key file is created only for a database without a check: one whose
// secrets are sealed needs the key they were sealed with, and a new key would
// open none of them (ErrNoKeyFile). A key that is not the database's is refused
// (ErrWrongKey).
func Setup(path, check string) (key *Key, newCheck string, err error) {
	key, err = LoadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if check != "" {
			return nil, "", fmt.Errorf("%s: %w", path, ErrNoKeyFile)
		}
		key, err = CreateFile(path)
	}
	if err != nil {
		return nil, "", err
	}
	if check == "" {
		return key, key.check(), nil
	}
	if !key.matches(check) {
		return nil, "", fmt.Errorf("%s: %w", path, ErrWrongKey)
	}
	return key, "", nil
}
