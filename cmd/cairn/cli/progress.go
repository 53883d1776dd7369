package cli

import (
	"io"
	"os"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// progressMinSize is the smallest transfer that gets a progress bar: smaller ones finish
// before a bar would tell anything.
const progressMinSize = 4 << 20

// progressOn says whether progress bars are drawn: only on a terminal with a size (stderr,
// where progress goes), unless --no-progress or TERM=dumb. Anything else (a pipe, a file, CI
// logs) gets no bar and no control characters.
func (a *app) progressOn() bool {
	if a.noProgress || a.env("TERM") == "dumb" {
		return false
	}
	f, ok := a.stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false
	}
	// A terminal without a size (some CI runners' pseudo-terminals) has no room to draw in.
	w, _, err := term.GetSize(int(f.Fd()))
	return err == nil && w > 0
}

// trackProgress returns body wrapped with a progress bar on stderr for a transfer of size
// bytes called name, when bars are on and the transfer is large enough; else body itself.
// done must be called once the transfer ends (ok: it completed); it ends the bar (full,
// or marked aborted) and waits until it is drawn, so that the lines printed after it are
// not mixed into it.
func (a *app) trackProgress(name string, size int64, body io.Reader) (io.Reader, func(ok bool)) {
	if size < progressMinSize || !a.progressOn() {
		return body, func(bool) {}
	}
	p := mpb.NewWithContext(a.ctx, mpb.WithOutput(a.stderr), mpb.WithWidth(30), mpb.WithRefreshRate(150*time.Millisecond))
	bar := p.New(size, mpb.BarStyle(),
		mpb.PrependDecorators(
			decor.Name("  "+name, decor.WCSyncSpaceR),
			decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncSpace),
		),
		mpb.AppendDecorators(
			decor.Percentage(decor.WC{W: 5}),
			decor.Name("  "),
			decor.EwmaSpeed(decor.SizeB1024(0), "% .1f", 30),
		),
	)
	r, err := bar.ProxyReader(body)
	if err != nil { // the context ended already
		p.Shutdown()
		return body, func(bool) {}
	}
	return r, func(ok bool) {
		if ok {
			bar.SetTotal(-1, true) // complete even if the server stopped reading early
		} else {
			bar.Abort(false)
		}
		p.Wait()
	}
}
