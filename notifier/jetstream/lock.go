package jetstream

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// LockFile is the file in the data directory that `serve` holds locked
// while it runs; it holds the PID of the process that has it.
const LockFile = "varsel.lock"

// ErrDataDirInUse is wrapped by LockDataDir's error when another process
// holds the data directory.
var ErrDataDirInUse = errors.New("data directory in use")

// DirLock is an exclusive lock on a data directory.
type DirLock struct {
	f *os.File
}

// LockDataDir takes the exclusive lock on dir (created if missing) that
// keeps a second process from opening the same store: two nats-servers on
// one JetStream directory fork it. The lock is the kernel's (flock), so it
// goes when the process dies, however it dies. When another process holds
// it, the error wraps ErrDataDirInUse and names the directory and that
// process's PID.
func LockDataDir(dir string) (*DirLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		abs, _ := filepath.Abs(dir)
		holder := "another process"
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
			holder = "process " + strconv.Itoa(pid)
		}
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is used by %s (another varsel serve or demo); stop it, or give this one its own VARSEL_DATA_DIR",
				ErrDataDirInUse, abs, holder)
		}
		return nil, fmt.Errorf("lock data directory %s: %w", abs, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &DirLock{f: f}, nil
}

// Unlock releases the lock; the file stays, empty of meaning.
func (l *DirLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor releases the flock
	l.f = nil
	return err
}
