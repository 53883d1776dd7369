package server

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGETSendfileAB is a measurement, not a test: with CAIRN_GET_AB_WRK set to a wrk
// command (e.g. "taskset -c 1 wrk"), it serves a snapshot of 48,747 bytes (CAIRN_GET_AB_BYTES) from this
// process over loopback and runs wrk against it in alternating rounds, with the memfd
// sendfile path on and off, and logs requests per CPU-second of this process for each.
// Run it pinned (taskset -c 0 go test -c … && taskset -c 0 ./server.test -test.run …) so
// that the Go runtime gets one P, as cairnd does in the harness (BENCHMARKS.md §1).
func TestGETSendfileAB(t *testing.T) {
	wrk := os.Getenv("CAIRN_GET_AB_WRK")
	if wrk == "" {
		t.Skip("CAIRN_GET_AB_WRK is not set (a measurement, run by hand)")
	}
	rounds, _ := strconv.Atoi(os.Getenv("CAIRN_GET_AB_ROUNDS"))
	if rounds == 0 {
		rounds = 4
	}
	secs := os.Getenv("CAIRN_GET_AB_SECONDS")
	if secs == "" {
		secs = "8"
	}
	s := benchServer(t)
	size, _ := strconv.Atoi(os.Getenv("CAIRN_GET_AB_BYTES"))
	if size == 0 {
		size = 48747
	}
	raw := bytes.Repeat([]byte("s"), size)
	sum := sha256.Sum256(raw)
	h := *s.cache.Head()
	h.snapshot = newMetaFile(raw, sum[:], 7, time.Now().Add(time.Hour))
	s.cache.cur.Store(&h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s.Handler()}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/metadata/7.snapshot.json"
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	args := strings.Fields(wrk)
	total := map[bool][2]float64{}
	for i := 0; i < 2*rounds; i++ {
		on := i%2 == 0
		s.cache.sends.mu.Lock()
		s.cache.sends.disabled = !on
		if !on { // the head's memfd would still be used: retire it
			if src := h.snapshot.send.Swap(nil); src != nil {
				src.retire()
			}
			s.cache.sends.live, s.cache.sends.bytes = nil, 0
		}
		s.cache.sends.mu.Unlock()
		c0 := cpu()
		out, err := exec.Command(args[0], append(args[1:], "-t1", "-c50", "-d"+secs+"s", url)...).CombinedOutput()
		used := (cpu() - c0).Seconds()
		if err != nil {
			t.Fatalf("wrk: %v: %s", err, out)
		}
		var reqs float64
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) >= 4 && f[1] == "requests" && f[2] == "in" {
				reqs, _ = strconv.ParseFloat(f[0], 64)
			}
		}
		tot := total[on]
		total[on] = [2]float64{tot[0] + reqs, tot[1] + used}
		t.Logf("round %d sendfile=%v: %.0f requests, %.2f CPU-s, %.0f per CPU-s, load %s", i/2+1, on, reqs, used, reqs/used, loadavg())
	}
	for _, on := range []bool{true, false} {
		t.Logf("sendfile=%v: %.0f requests in %.2f CPU-s: %.0f per CPU-s", on, total[on][0], total[on][1], total[on][0]/total[on][1])
	}
	t.Logf("sendfile / write: %.2f", (total[true][0]/total[true][1])/(total[false][0]/total[false][1]))
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return fmt.Sprint(f[:3])
}
