//go:build unix

package sigstoretest

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// lockMachineWide holds a lock named name, shared by every process on the machine, until
// t ends; it waits up to wait for another holder.
func lockMachineWide(t testing.TB, name string, wait time.Duration) {
	t.Helper()
	p := filepath.Join(os.TempDir(), "cairn-sigstoretest-"+name+".lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		t.Fatalf("opening the lock %s: %v", p, err)
	}
	deadline := time.Now().Add(wait)
	for logged := false; ; {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR {
			f.Close()
			t.Fatalf("taking the lock %s: %v", p, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			t.Fatalf("another test process held %s for %v", p, wait)
		}
		if !logged {
			t.Logf("waiting for another test process to release %s", p)
			logged = true
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(func() { f.Close() })
}
