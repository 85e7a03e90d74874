package jetstream

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestLockDataDirRefusesASecondHolder takes the lock in a child process
// (the test binary itself) and checks that this process is refused, with
// the directory and the child's PID, and gets the lock once the child is
// gone.
func TestLockDataDirRefusesASecondHolder(t *testing.T) {
	if dir := os.Getenv("VARSEL_LOCK_CHILD"); dir != "" {
		if _, err := LockDataDir(dir); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("locked\n")
		_, _ = os.Stdin.Read(make([]byte, 1)) // hold it until told
		return
	}
	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^TestLockDataDirRefusesASecondHolder$")
	child.Env = append(os.Environ(), "VARSEL_LOCK_CHILD="+dir)
	stdin, _ := child.StdinPipe()
	stdout, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := stdout.Read(buf); err != nil || string(buf) != "locked\n" {
		t.Fatalf("child did not lock: %q %v", buf, err)
	}
	_, err := LockDataDir(dir)
	if !errors.Is(err, ErrDataDirInUse) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "process "+strconv.Itoa(child.Process.Pid)) {
		t.Errorf("second lock: %v; want ErrDataDirInUse naming %s and pid %d", err, dir, child.Process.Pid)
	}
	// The kernel drops the lock with the process, however it ends.
	_ = child.Process.Kill()
	_ = child.Wait()
	stdin.Close()
	l, err := LockDataDir(dir)
	if err != nil {
		t.Fatalf("lock after the holder died: %v", err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
}
