//go:build !unix

package sigstoretest

import (
	"testing"
	"time"
)

// lockMachineWide: without flock, tests in other processes are not kept apart.
func lockMachineWide(testing.TB, string, time.Duration) {}
