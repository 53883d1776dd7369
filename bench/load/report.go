package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// runReport reads RESULT lines (or bare JSON lines) and prints markdown tables.
func runReport(in io.Reader, out io.Writer) error {
	var rs []map[string]any
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "RESULT "))
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return err
		}
		rs = append(rs, r)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	of := func(kind string) []map[string]any {
		var out []map[string]any
		for _, r := range rs {
			if r["kind"] == kind {
				out = append(out, r)
			}
		}
		return out
	}
	f := func(r map[string]any, k string) float64 { v, _ := r[k].(float64); return v }
	s := func(r map[string]any, k string) string { v, _ := r[k].(string); return v }

	if gets := of("get"); len(gets) > 0 {
		fmt.Fprintln(out, "### Metadata GET (server pinned to CPU 0, wrk -t1 pinned to CPU 1)")
		fmt.Fprintln(out)
		fmt.Fprintln(out, "| file | server | bytes | requests/s | server CPU-s | requests per CPU-s | × nginx per CPU-s | × nginx req/s | p50 | p99 | load avg |")
		fmt.Fprintln(out, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		ref := map[string]map[string]any{}
		for _, r := range gets {
			if s(r, "name") == "nginx" {
				ref[s(r, "label")] = r
			}
		}
		for _, r := range gets {
			ratio, rratio := "-", "-"
			if n := ref[s(r, "label")]; n != nil && f(n, "req_per_cpu_s") > 0 {
				ratio = fmt.Sprintf("%.2f", f(r, "req_per_cpu_s")/f(n, "req_per_cpu_s"))
				rratio = fmt.Sprintf("%.2f", f(r, "rps")/f(n, "rps"))
			}
			fmt.Fprintf(out, "| %s | %s | %.0f | %.0f | %.2f | %.0f | %s | %s | %s | %s | %s |\n", s(r, "label"), s(r, "name"), f(r, "bytes"), f(r, "rps"), f(r, "cpu_server_s"), f(r, "req_per_cpu_s"), ratio, rratio, s(r, "lat_p50"), s(r, "lat_p99"), s(r, "loadavg"))
		}
		fmt.Fprintln(out)
	}
	if ups := of("uploads"); len(ups) > 0 {
		fmt.Fprintln(out, "### Uploads (PUT blob + POST signed role ?wait=30s → 201 published)")
		fmt.Fprintln(out)
		fmt.Fprintln(out, "| uploaders | uploads/s | p50 ms | p95 ms | p99 ms | publishes | mean batch | batch sizes (≤le:count) | publish mean ms | cairnd CPU-s | postgres CPU-s | harness CPU-s | cairnd ms/upload | pg ms/upload | max targets/role | load avg |")
		fmt.Fprintln(out, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for _, r := range ups {
			fmt.Fprintf(out, "| %.0f | %.1f | %.1f | %.1f | %.1f | %.0f | %.1f | %s | %.1f | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f | %s |\n",
				f(r, "concurrency"), f(r, "uploads_per_s"), f(r, "p50_ms"), f(r, "p95_ms"), f(r, "p99_ms"), f(r, "publishes"), f(r, "mean_batch_roles"), s(r, "batch_hist"),
				f(r, "publish_mean_ms"), f(r, "cpu_server_s"), f(r, "cpu_pg_s"), f(r, "cpu_harness_s"), f(r, "server_cpu_ms_per_upload"), f(r, "pg_cpu_ms_per_upload"), f(r, "max_targets_per_role"), s(r, "loadavg"))
		}
		fmt.Fprintln(out)
	}
	if ps := of("projects"); len(ps) > 0 {
		fmt.Fprintln(out, "### Project creation over the API (?wait=0s, then one waited publish)")
		fmt.Fprintln(out)
		fmt.Fprintln(out, "| label | projects | clients | seconds | creates/s | until all published, s | cairnd CPU-s | postgres CPU-s | load avg |")
		fmt.Fprintln(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for _, r := range ps {
			fmt.Fprintf(out, "| %s | %.0f | %.0f | %.1f | %.0f | %.1f | %.1f | %.1f | %s |\n", s(r, "label"), f(r, "n"), f(r, "concurrency"), f(r, "create_seconds"), f(r, "creates_per_second"), f(r, "settle_seconds"), f(r, "cpu_server_s"), f(r, "cpu_pg_s"), s(r, "loadavg"))
		}
		fmt.Fprintln(out)
	}
	if ps := of("publish"); len(ps) > 0 {
		fmt.Fprintln(out, "### Publish with one staged role, over HTTP (sequential)")
		fmt.Fprintln(out)
		fmt.Fprintln(out, "| label | creates a project | publishes | snapshot bytes | upload→published p50 ms | p95 ms | p99 ms | server publish mean ms | server p50 ≤ s | server p95 ≤ s | load avg |")
		fmt.Fprintln(out, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for _, r := range ps {
			create := "no"
			if b, _ := r["create"].(bool); b {
				create = "yes"
			}
			fmt.Fprintf(out, "| %s | %s | %.0f | %.0f | %.1f | %.1f | %.1f | %.1f | %s | %s | %s |\n", s(r, "label"), create, f(r, "publishes"), f(r, "snapshot_bytes"), f(r, "submit_p50_ms"), f(r, "submit_p95_ms"), f(r, "submit_p99_ms"), f(r, "publish_mean_ms"), s(r, "publish_p50_le_s"), s(r, "publish_p95_le_s"), s(r, "loadavg"))
		}
		fmt.Fprintln(out)
	}
	if ws := of("wire"); len(ws) > 0 {
		fmt.Fprintln(out, "### Bytes on the wire to fetch one release (fresh client, then a refresh after one upload elsewhere)")
		fmt.Fprintln(out)
		fmt.Fprintln(out, "| label | client | phase | requests | metadata bytes | target bytes | all bytes sent (headers included) | seconds |")
		fmt.Fprintln(out, "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
		for _, r := range ws {
			phase := s(r, "phase")
			if b, _ := r["timed_out"].(bool); b {
				phase += " (did not finish: timed out)"
			}
			fmt.Fprintf(out, "| %s | %s | %s | %.0f | %.0f | %.0f | %.0f | %.2f |\n", s(r, "label"), s(r, "client"), phase, f(r, "requests"), f(r, "metadata_bytes"), f(r, "target_bytes"), f(r, "wire_bytes"), f(r, "seconds"))
		}
		fmt.Fprintln(out)
	}
	if ocis := of("oci"); len(ocis) > 0 {
		fmt.Fprintln(out, "### OCI push and pull: cairnd vs the CNCF distribution registry and zot (same run, alternating)")
		fmt.Fprintln(out)
		fmt.Fprintln(out, "| step | server | label | n × bytes | seconds | per s | MiB/s | p50 ms | p99 ms | server CPU-s | postgres CPU-s | load avg |")
		fmt.Fprintln(out, "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		rates := map[string]map[string][]float64{} // step → server → rates
		for _, r := range ocis {
			n := f(r, "n")
			if n == 0 {
				n = 1
			}
			rate := f(r, "per_s")
			if rate == 0 {
				rate = f(r, "mib_per_s")
			}
			if rates[s(r, "step")] == nil {
				rates[s(r, "step")] = map[string][]float64{}
			}
			rates[s(r, "step")][s(r, "name")] = append(rates[s(r, "step")][s(r, "name")], rate)
			fmt.Fprintf(out, "| %s | %s | %s | %.0f × %.0f | %.2f | %.0f | %.0f | %.1f | %.1f | %.2f | %.2f | %s |\n", s(r, "step"), s(r, "name"), s(r, "label"), n, f(r, "bytes"), f(r, "seconds"), f(r, "per_s"), f(r, "mib_per_s"), f(r, "p50_ms"), f(r, "p99_ms"), f(r, "cpu_server_s"), f(r, "cpu_pg_s"), s(r, "loadavg"))
		}
		fmt.Fprintln(out)
		fmt.Fprintln(out, "| step | reference | cairnd median | reference median | cairnd ÷ reference |")
		fmt.Fprintln(out, "| --- | --- | ---: | ---: | ---: |")
		for _, st := range []string{"push-small", "pull-small", "push-large", "pull-large"} {
			for _, ref := range []string{"registry", "zot"} {
				if v := rates[st]; v != nil && len(v[ref]) > 0 && len(v["cairnd"]) > 0 {
					c, g := median(v["cairnd"]), median(v[ref])
					fmt.Fprintf(out, "| %s | %s | %.0f | %.0f | %.2f× |\n", st, ref, c, g, c/g)
				}
			}
		}
		fmt.Fprintln(out)
	}
	return nil
}

func median(v []float64) float64 {
	w := append([]float64(nil), v...)
	sort.Float64s(w)
	if len(w)%2 == 1 {
		return w[len(w)/2]
	}
	return (w[len(w)/2-1] + w[len(w)/2]) / 2
}
