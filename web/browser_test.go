package web_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-rod/rod"
	"github.com/go-rod/rod/lib/launcher"
	"github.com/go-rod/rod/lib/proto"

	"github.com/cairn-dev/cairn/internal/testenv"
)

// Browser tests drive Debian's chromium (installed by `make chromium`) with go-rod. Under
// CI=true a missing browser fails the tests; elsewhere they skip, saying what to run.
// Nothing here downloads a browser: the launcher is given the system binary.

func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CAIRN_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	testenv.MissingTool(t, "chromium is not installed: run `make chromium` (Debian's chromium package)")
	return ""
}

// browser is one headless Chromium with a fresh profile and one page, and what the page
// logged as errors.
type browser struct {
	page *rod.Page
	// noScripts: JavaScript is off in the page (scripts).
	noScripts bool
	mu        sync.Mutex
	errors    []string
}

const waitLimit = 60 * time.Second

func newBrowser(t *testing.T) *browser {
	t.Helper()
	l := launcher.New().Bin(chromiumPath(t)).HeadlessNew(true).NoSandbox(true).Leakless(false).
		UserDataDir(t.TempDir()).
		Set("disable-gpu").Set("disable-quic").Set("no-first-run").Set("disable-background-networking").
		Set("disable-component-update").Set("disable-sync").Set("disable-dev-shm-usage").
		Set("window-size", "1280,900")
	u, err := l.Launch()
	if err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	t.Cleanup(func() { l.Kill(); l.Cleanup() })
	br := rod.New().ControlURL(u)
	if err := br.Connect(); err != nil {
		t.Fatalf("connecting to chromium: %v", err)
	}
	t.Cleanup(func() { _ = br.Close() })
	page, err := br.Page(proto.TargetCreateTarget{})
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{page: page}
	_ = proto.RuntimeEnable{}.Call(page)
	_ = proto.LogEnable{}.Call(page)
	go page.EachEvent(func(e *proto.RuntimeExceptionThrown) {
		b.addError("exception: " + e.ExceptionDetails.Text + " " + exceptionText(e))
	}, func(e *proto.RuntimeConsoleAPICalled) {
		if e.Type == proto.RuntimeConsoleAPICalledTypeError || e.Type == proto.RuntimeConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, a.Value.String()+a.Description)
			}
			b.addError("console." + string(e.Type) + ": " + strings.Join(parts, " "))
		}
	}, func(e *proto.LogEntryAdded) {
		if e.Entry.Level != proto.LogLogEntryLevelError {
			return
		}
		// A TUF client probes N+1.root.json until a 404: that is the protocol, not an error.
		if e.Entry.Source == proto.LogLogEntrySourceNetwork && strings.HasSuffix(e.Entry.URL, ".root.json") {
			return
		}
		b.addError(fmt.Sprintf("log %s: %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL))
	})()
	return b
}

func exceptionText(e *proto.RuntimeExceptionThrown) string {
	if e.ExceptionDetails.Exception != nil {
		return e.ExceptionDetails.Exception.Description
	}
	return ""
}

func (b *browser) addError(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errors = append(b.errors, s)
}

// takeErrors returns and clears what the page logged as errors.
func (b *browser) takeErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.errors
	b.errors = nil
	return e
}

func (b *browser) check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		_, file, line, _ := runtime.Caller(2)
		t.Fatalf("%s:%d: browser: %v (page errors: %v)", filepath.Base(file), line, err, b.takeErrors())
	}
}

// open navigates and waits for the page to load.
func (b *browser) open(t *testing.T, url string) {
	t.Helper()
	if b.noScripts {
		// rod's WaitLoad runs a script in the page, which a page without JavaScript may
		// never answer: wait for the browser's own load event instead.
		loaded := b.page.Timeout(waitLimit).WaitNavigation(proto.PageLifecycleEventNameLoad)
		b.check(t, b.page.Timeout(waitLimit).Navigate(url))
		done := make(chan struct{})
		go func() { loaded(); close(done) }()
		select {
		case <-done:
		case <-time.After(waitLimit):
			b.check(t, fmt.Errorf("%s did not load in %s", url, waitLimit))
		}
		return
	}
	b.check(t, b.page.Timeout(waitLimit).Navigate(url))
	b.check(t, b.page.Timeout(waitLimit).WaitLoad())
}

// el waits for an element.
func (b *browser) el(t *testing.T, sel string) *rod.Element {
	t.Helper()
	e, err := b.page.Timeout(waitLimit).Element(sel)
	b.check(t, err)
	return e.CancelTimeout()
}

func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	s, err := b.el(t, sel).Text()
	b.check(t, err)
	return s
}

// waitVerdict waits until the verification panel says verified or failed, and returns
// its class and status text.
func (b *browser) waitVerdict(t *testing.T) (string, string) {
	t.Helper()
	e := b.el(t, "#verify.verified, #verify.failed")
	cls, err := e.Attribute("class")
	b.check(t, err)
	return *cls, b.text(t, "#verify-status")
}

// eval runs a JavaScript function expression and returns its JSON value.
func (b *browser) eval(t *testing.T, fn string, args ...any) *proto.RuntimeRemoteObject {
	t.Helper()
	r, err := b.page.Timeout(waitLimit).Evaluate(rod.Eval(fn, args...).ByPromise())
	b.check(t, err)
	return r
}

// noErrors fails the test if the page logged an error since the last call.
func (b *browser) noErrors(t *testing.T, where string) {
	t.Helper()
	time.Sleep(50 * time.Millisecond) // events arrive asynchronously
	if e := b.takeErrors(); len(e) > 0 {
		t.Errorf("%s: the page logged errors: %q", where, e)
	}
}

// setDark switches prefers-color-scheme.
func (b *browser) setDark(t *testing.T, dark bool) {
	t.Helper()
	v := "light"
	if dark {
		v = "dark"
	}
	b.check(t, proto.EmulationSetEmulatedMedia{Features: []*proto.EmulationMediaFeature{{Name: "prefers-color-scheme", Value: v}}}.Call(b.page))
}

// scripts turns JavaScript on or off for the pages opened next.
func (b *browser) scripts(t *testing.T, on bool) {
	t.Helper()
	b.check(t, proto.EmulationSetScriptExecutionDisabled{Value: !on}.Call(b.page))
	b.noScripts = !on
}

// axe runs axe-core (from web/ui/node_modules, installed by `make npm`) in the page and
// returns its WCAG 2.1 A and AA violations.
func (b *browser) axe(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("ui", "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		t.Fatalf("axe-core is not installed (run `make npm`): %v", err)
	}
	if _, err := (proto.RuntimeEvaluate{Expression: string(src)}).Call(b.page); err != nil {
		t.Fatalf("loading axe-core into the page: %v", err)
	}
	r := b.eval(t, `() => axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
	  .then(r => r.violations.map(v => v.id + ' (' + v.help + '): ' + v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' ' + (n.failureSummary || '')).join('; ')))`)
	var out []string
	b.check(t, r.Value.Unmarshal(&out))
	return out
}

// screenshot saves a PNG of the whole page, or of the window only.
func (b *browser) screenshot(t *testing.T, file string, full bool) {
	t.Helper()
	png, err := b.page.Screenshot(full, &proto.PageCaptureScreenshot{Format: proto.PageCaptureScreenshotFormatPng})
	b.check(t, err)
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls a JavaScript condition (a function expression returning a boolean).
func (b *browser) waitFor(t *testing.T, cond string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		if b.eval(t, cond).Value.Bool() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s (page errors: %v)", cond, b.takeErrors())
}

// settle waits until the page loaded and its script has finished with every status
// panel (none still says that the script did not run, or ends in "…").
func (b *browser) settle(t *testing.T) {
	t.Helper()
	b.el(t, "main h1")
	b.waitFor(t, `() => document.readyState === 'complete' && ![...document.querySelectorAll('.status')].some(s => s.textContent.includes('did not run') || s.textContent.endsWith('…'))`)
}
