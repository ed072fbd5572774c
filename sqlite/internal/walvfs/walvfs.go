//go:build unix

// Package walvfs registers with SQLite a VFS that is the default one (unix)
// in every respect but one: the frames of a transaction are handed to the
// write-ahead log in a few write(2)s instead of two per page.
//
// Why: SQLite writes each WAL frame with two calls, its 24-byte header and
// then its page. A batch of the embedded store's writer commits about 140
// frames, and on a virtual machine where a system call is dear those calls
// were 13-15 % of the CPU profile of daodian bench (BENCHMARKS.md, machine
// I). The kernel's work per byte is the same either way; the calls are what
// this saves.
//
// How: the writes a connection makes to its WAL file are gathered while they
// append to one another, and written out
//   - when the header of a commit frame arrives (with it), and again when its
//     page has been gathered — a commit frame's header gives the database's
//     size in pages, which the WAL format sets on the last frame of a
//     transaction and on no other — before the write returns, so COMMIT, and
//     the header of the WAL index that makes the transaction visible to other
//     connections, come only after every frame of the transaction is in the
//     file, including a commit frame's header that SQLite rewrites on its own
//     after the frame (to fix its checksum);
//   - before any other call on the file (read, sync, truncate, size, file
//     control, close), so that the connection reads what it wrote, a sync
//     covers it and a truncation comes after it;
//   - before a write that does not append to them, or would take them past
//     bufferBytes.
//
// So what other connections and processes can read of the file — the frames
// of committed transactions — is exactly what it would be without this VFS,
// and so is what a sync makes durable. Only frames of a transaction not yet
// committed may be held back a while, and a crash loses those either way. A
// write error is returned by the call that wrote, as SQLite's own VFS would
// return it, and the gathered writes are dropped with it: SQLite then fails
// the transaction, as for any error writing the WAL.
package walvfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// Name is the name the VFS is registered under, for the DSN's vfs parameter.
const Name = "daodian-wal"

const (
	// bufferBytes bounds what one WAL file holds back: 4 MiB is about a
	// thousand frames of 4 KiB pages, several of the writer's largest batches.
	// A larger transaction is written in pieces of this size.
	bufferBytes = 4 << 20
	// writeBytes bounds one write to the wrapped VFS: the unix VFS writes at
	// most 128 KiB - 1 bytes in one call (os_unix.c, seekAndWriteFd, masks
	// the size to 17 bits, as no page is larger than 64 KiB), so 124 KiB.
	writeBytes = 124 << 10
	// frameHeaderBytes is the size of a WAL frame's header, written on its
	// own before the frame's page (wal.c, walWriteOneFrame).
	frameHeaderBytes = 24
	// fileHeaderBytes is our part of a WAL file's sqlite3_file (walFile),
	// before the wrapped VFS's file.
	fileHeaderBytes = int32(unsafe.Sizeof(walFile{}))
)

var (
	registerOnce sync.Once
	registerErr  error

	// base is the VFS wrapped (SQLite's default), vfs the one registered.
	base uintptr
	vfs  sqlite3.Tsqlite3_vfs
	// methods are the io methods of a wrapped WAL file.
	methods sqlite3.Tsqlite3_io_methods

	// Counts, for tests: writes SQLite asked for and writes made.
	writesAsked, writesMade atomic.Int64
)

// Register registers the VFS under Name, once per process. It is not the
// default: a connection uses it by naming it.
func Register() error {
	registerOnce.Do(func() { registerErr = register() })
	return registerErr
}

func register() error {
	tls := libc.NewTLS()
	defer tls.Close()
	base = sqlite3.Xsqlite3_vfs_find(tls, 0)
	if base == 0 {
		return errors.New("walvfs: SQLite has no default VFS")
	}
	vfs = *(*sqlite3.Tsqlite3_vfs)(ptr(base))
	name, err := libc.CString(Name)
	if err != nil {
		return err
	}
	vfs.FzName = name
	vfs.FpNext = 0
	vfs.FszOsFile += fileHeaderBytes
	*(*func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32)(unsafe.Pointer(&vfs.FxOpen)) = xOpen

	methods.FiVersion = 1 // SQLite maps no shared memory of a WAL file, nor pages of it
	*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&methods.FxClose)) = xClose
	*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&methods.FxRead)) = xRead
	*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&methods.FxWrite)) = xWrite
	*(*func(*libc.TLS, uintptr, int64) int32)(unsafe.Pointer(&methods.FxTruncate)) = xTruncate
	*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&methods.FxSync)) = xSync
	*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&methods.FxFileSize)) = xFileSize
	*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&methods.FxLock)) = xLock
	*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&methods.FxUnlock)) = xUnlock
	*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&methods.FxCheckReservedLock)) = xCheckReservedLock
	*(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&methods.FxFileControl)) = xFileControl
	*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&methods.FxSectorSize)) = xSectorSize
	*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&methods.FxDeviceCharacteristics)) = xDeviceCharacteristics

	if rc := sqlite3.Xsqlite3_vfs_register(tls, uintptr(unsafe.Pointer(&vfs)), 0); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("walvfs: register the VFS: SQLite error %d", rc)
	}
	return nil
}

// walFile is the state of one open WAL file, at the start of the
// sqlite3_file SQLite allocated for it (C memory, szOsFile bytes): its first
// field is sqlite3_file's, and the wrapped VFS's file follows it. It holds no
// Go pointer, so it may live there.
type walFile struct {
	methods uintptr // sqlite3_file.pMethods: &methods
	// buf (C memory, bufferBytes, allocated at the first write) holds n bytes
	// to be written at off.
	buf uintptr
	off int64
	n   int64
	// commitAt is the offset of the page of a commit frame whose header was
	// gathered last; -1 for none.
	commitAt int64
}

// ptr turns an address in SQLite's memory, which the Go collector neither
// moves nor frees, into a pointer.
func ptr(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

// inner is the wrapped VFS's file inside a WAL file of this one.
func inner(pFile uintptr) uintptr { return pFile + uintptr(fileHeaderBytes) }

func innerMethods(pFile uintptr) *sqlite3.Tsqlite3_io_methods {
	return (*sqlite3.Tsqlite3_io_methods)(ptr((*sqlite3.Tsqlite3_file)(ptr(inner(pFile))).FpMethods))
}

// call1, callInt, callPtr and callIO call a method of the wrapped VFS: a C
// function pointer, which modernc represents as a pointer to a Go func value.
func call1(fn uintptr, tls *libc.TLS, p uintptr) int32 {
	return (*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&struct{ uintptr }{fn})))(tls, p)
}

func callInt(fn uintptr, tls *libc.TLS, p uintptr, a int32) int32 {
	return (*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&struct{ uintptr }{fn})))(tls, p, a)
}

func callPtr(fn uintptr, tls *libc.TLS, p uintptr, a uintptr) int32 {
	return (*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&struct{ uintptr }{fn})))(tls, p, a)
}

func callIO(fn uintptr, tls *libc.TLS, p, buf uintptr, n int32, off int64) int32 {
	return (*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&struct{ uintptr }{fn})))(tls, p, buf, n, off)
}

func xOpen(tls *libc.TLS, pVfs, zName, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	open := (*sqlite3.Tsqlite3_vfs)(ptr(base)).FxOpen
	call := *(*func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32)(unsafe.Pointer(&struct{ uintptr }{open}))
	if flags&sqlite3.SQLITE_OPEN_WAL == 0 {
		// Every other file is the wrapped VFS's own, in the same memory.
		return call(tls, base, zName, pFile, flags, pOutFlags)
	}
	(*sqlite3.Tsqlite3_file)(ptr(pFile)).FpMethods = 0
	if rc := call(tls, base, zName, inner(pFile), flags, pOutFlags); rc != sqlite3.SQLITE_OK {
		return rc
	}
	if (*sqlite3.Tsqlite3_file)(ptr(inner(pFile))).FpMethods == 0 {
		return sqlite3.SQLITE_CANTOPEN
	}
	*fileOf(pFile) = walFile{methods: uintptr(unsafe.Pointer(&methods)), commitAt: -1}
	return sqlite3.SQLITE_OK
}

func fileOf(pFile uintptr) *walFile { return (*walFile)(ptr(pFile)) }

// flush writes what f holds back. SQLite calls a file's methods from one
// thread at a time (its connection's mutex), so f needs no lock of its own.
func flush(tls *libc.TLS, pFile uintptr, f *walFile) int32 {
	if f.n == 0 {
		return sqlite3.SQLITE_OK
	}
	n, off := f.n, f.off
	f.n, f.commitAt = 0, -1
	write := innerMethods(pFile).FxWrite
	for done := int64(0); done < n; done += writeBytes {
		writesMade.Add(1)
		if rc := callIO(write, tls, inner(pFile), f.buf+uintptr(done), int32(min(writeBytes, n-done)), off+done); rc != sqlite3.SQLITE_OK {
			return rc
		}
	}
	return sqlite3.SQLITE_OK
}

func xWrite(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	f := fileOf(pFile)
	writesAsked.Add(1)
	n := int64(iAmt)
	if f.n > 0 && (iOfst != f.off+f.n || f.n+n > bufferBytes || n > writeBytes) {
		if rc := flush(tls, pFile, f); rc != sqlite3.SQLITE_OK {
			return rc
		}
	}
	if n > writeBytes {
		// Not a WAL write SQLite makes (pages are at most 64 KiB): pass it on.
		writesMade.Add(1)
		return callIO(innerMethods(pFile).FxWrite, tls, inner(pFile), zBuf, iAmt, iOfst)
	}
	if f.buf == 0 {
		if f.buf = libc.Xmalloc(tls, bufferBytes); f.buf == 0 {
			return sqlite3.SQLITE_NOMEM
		}
	}
	if f.n == 0 {
		f.off = iOfst
	}
	src := unsafe.Slice((*byte)(ptr(zBuf)), n)
	copy(unsafe.Slice((*byte)(ptr(f.buf+uintptr(f.n))), n), src)
	f.n += n
	switch {
	case iOfst == f.commitAt:
		// The page of a commit frame.
		return flush(tls, pFile, f)
	case n == frameHeaderBytes && binary.BigEndian.Uint32(src[4:8]) != 0:
		// The header of a commit frame. It is written out at once, with what
		// came before it, and so is its page next: SQLite may also rewrite a
		// commit frame's header alone, after the frame was written, to fix
		// its checksum (wal.c, walRewriteChecksums), and COMMIT follows.
		rc := flush(tls, pFile, f)
		f.commitAt = iOfst + frameHeaderBytes
		return rc
	}
	return sqlite3.SQLITE_OK
}

func xRead(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	if rc := flush(tls, pFile, fileOf(pFile)); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return callIO(innerMethods(pFile).FxRead, tls, inner(pFile), zBuf, iAmt, iOfst)
}

func xClose(tls *libc.TLS, pFile uintptr) int32 {
	f := fileOf(pFile)
	rc := flush(tls, pFile, f)
	if f.buf != 0 {
		libc.Xfree(tls, f.buf)
		f.buf = 0
	}
	if crc := call1(innerMethods(pFile).FxClose, tls, inner(pFile)); rc == sqlite3.SQLITE_OK {
		rc = crc
	}
	return rc
}

func xTruncate(tls *libc.TLS, pFile uintptr, size int64) int32 {
	if rc := flush(tls, pFile, fileOf(pFile)); rc != sqlite3.SQLITE_OK {
		return rc
	}
	fn := innerMethods(pFile).FxTruncate
	return (*(*func(*libc.TLS, uintptr, int64) int32)(unsafe.Pointer(&struct{ uintptr }{fn})))(tls, inner(pFile), size)
}

func xSync(tls *libc.TLS, pFile uintptr, flags int32) int32 {
	if rc := flush(tls, pFile, fileOf(pFile)); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return callInt(innerMethods(pFile).FxSync, tls, inner(pFile), flags)
}

func xFileSize(tls *libc.TLS, pFile, pSize uintptr) int32 {
	if rc := flush(tls, pFile, fileOf(pFile)); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return callPtr(innerMethods(pFile).FxFileSize, tls, inner(pFile), pSize)
}

func xFileControl(tls *libc.TLS, pFile uintptr, op int32, pArg uintptr) int32 {
	if rc := flush(tls, pFile, fileOf(pFile)); rc != sqlite3.SQLITE_OK {
		return rc
	}
	fn := innerMethods(pFile).FxFileControl
	return (*(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&struct{ uintptr }{fn})))(tls, inner(pFile), op, pArg)
}

func xLock(tls *libc.TLS, pFile uintptr, lock int32) int32 {
	return callInt(innerMethods(pFile).FxLock, tls, inner(pFile), lock)
}

func xUnlock(tls *libc.TLS, pFile uintptr, lock int32) int32 {
	return callInt(innerMethods(pFile).FxUnlock, tls, inner(pFile), lock)
}

func xCheckReservedLock(tls *libc.TLS, pFile, pResOut uintptr) int32 {
	return callPtr(innerMethods(pFile).FxCheckReservedLock, tls, inner(pFile), pResOut)
}

func xSectorSize(tls *libc.TLS, pFile uintptr) int32 {
	return call1(innerMethods(pFile).FxSectorSize, tls, inner(pFile))
}

func xDeviceCharacteristics(tls *libc.TLS, pFile uintptr) int32 {
	return call1(innerMethods(pFile).FxDeviceCharacteristics, tls, inner(pFile))
}
