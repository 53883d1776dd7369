// Package readme runs README.md's console blocks, in order, in one bash session against a
// server started the way `make run` starts it, and compares the output of every command
// with the output README.md shows, by shape (hashes, key IDs, times, Go versions and the
// user's home directory normalised; everything else, numbers included, as shown).
//
// How README.md marks its blocks:
//   - A ```console block runs: each "$ " line is one shell command, the lines after it (up
//     to the next "$ " line) are its output, stdout and stderr together; blank lines are
//     not compared. A line that is only "…" stands for any number of lines; "…" inside a
//     line stands for any text.
//   - A command block that cannot run here (an HSM, a Rekor log, a stalling server, `make
//     test` itself) is preceded by `<!-- readme-test: skip: REASON -->`; the test lists
//     them. A ```sh/```bash/```shell block, or any other block with "$ " lines, must be a
//     console block or be marked skip: nothing that looks like a command goes unchecked.
//   - Every command must exit 0: one that is meant to fail shows `; echo "exit $?"`.
package readme

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// block is a fenced code block of README.md that shows commands.
type block struct {
	line int    // README.md line of the opening fence
	info string // the fence's info string: console, sh, …
	skip string // why it does not run, when marked skip
	cmds []command
}

// command is one "$ " line of a console block and the output README.md shows for it.
type command struct {
	line int    // README.md line of the "$ " line
	text string // the command, without "$ "
	want []outLine
}

type outLine struct {
	line int // README.md line
	text string
}

var (
	markerRE  = regexp.MustCompile(`^<!-- readme-test: skip: (\S.*?) -->$`)
	commandRE = regexp.MustCompile(`^\$ `)
)

// parse returns README.md's command blocks in order. It refuses a block that shows
// commands but neither runs nor says why not, a console block with output before its first
// command, and a marker it does not know or that marks no command block.
func parse(readme string) ([]block, error) {
	lines := strings.Split(readme, "\n")
	var blocks []block
	skip, skipLine := "", 0
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "<!-- readme-test") {
			m := markerRE.FindStringSubmatch(l)
			if m == nil {
				return nil, fmt.Errorf("README.md:%d: unknown marker %q: the only one is <!-- readme-test: skip: REASON -->", i+1, l)
			}
			skip, skipLine = m[1], i+1
			continue
		}
		if !strings.HasPrefix(l, "```") {
			if strings.TrimSpace(l) != "" && skip != "" {
				return nil, fmt.Errorf("README.md:%d: the skip marker is not right above a code block", skipLine)
			}
			continue
		}
		b := block{line: i + 1, info: strings.TrimSpace(strings.TrimPrefix(l, "```")), skip: skip}
		markedBy := skipLine
		skip, skipLine = "", 0
		var body []string
		for i++; i < len(lines) && lines[i] != "```"; i++ {
			body = append(body, lines[i])
		}
		if i == len(lines) {
			return nil, fmt.Errorf("README.md:%d: code block never closed", b.line)
		}
		hasCommand := false
		for _, bl := range body {
			hasCommand = hasCommand || commandRE.MatchString(bl)
		}
		switch {
		case b.info == "console":
		case b.info == "sh" || b.info == "bash" || b.info == "shell" || hasCommand:
			if b.skip == "" {
				return nil, fmt.Errorf("README.md:%d: a %q block shows commands: make it a ```console block with \"$ \" prompts, which test/readme runs, or mark it <!-- readme-test: skip: REASON -->", b.line, b.info)
			}
			blocks = append(blocks, b)
			continue
		default:
			if b.skip != "" {
				return nil, fmt.Errorf("README.md:%d: skip marker above a block that shows no commands", markedBy)
			}
			continue
		}
		for j, bl := range body {
			n := b.line + 1 + j
			switch {
			case commandRE.MatchString(bl):
				text := strings.TrimPrefix(bl, "$ ")
				if strings.HasSuffix(text, `\`) {
					return nil, fmt.Errorf("README.md:%d: a command continued on the next line: write it on one line", n)
				}
				b.cmds = append(b.cmds, command{line: n, text: text})
			case strings.TrimSpace(bl) == "":
			case len(b.cmds) == 0:
				return nil, fmt.Errorf("README.md:%d: output before the first \"$ \" command of the console block", n)
			default:
				c := &b.cmds[len(b.cmds)-1]
				c.want = append(c.want, outLine{n, bl})
			}
		}
		if len(b.cmds) == 0 {
			return nil, fmt.Errorf("README.md:%d: a console block without a \"$ \" command", b.line)
		}
		blocks = append(blocks, b)
	}
	if skip != "" {
		return nil, fmt.Errorf("README.md:%d: the skip marker is not right above a code block", skipLine)
	}
	return blocks, nil
}

// shapeRules turn what differs between two runs of the same commands into placeholders,
// most specific first. What they leave (words, numbers, paths, the order of lines) must
// be as README.md shows it.
var shapeRules = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z| UTC|[+-]\d\d:\d\d)?`), "<time>"}, // RFC 3339, cairn's "2027-12-07 15:02 UTC"
	{regexp.MustCompile(`\b\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\b`), "<time>"},                                    // Go's log package
	{regexp.MustCompile(`\bin \d+ (second|minute|hour|day)s?\b`), "in <duration>"},
	{regexp.MustCompile(`\b(a moment|\d+ (second|minute|hour|day)s?) ago\b`), "<duration> ago"},
	{regexp.MustCompile(`\b[0-9a-f]{4}(:[0-9a-f]{4}){7,}\b`), "<fingerprint>"}, // cairn's SHA256:xxxx:… fingerprints
	{regexp.MustCompile(`\b[0-9a-f]{7,}\b`), "<hex>"},                          // hashes, digests, key and token IDs, commits
	{regexp.MustCompile(`\bgo1\.\d+(\.\d+)?\b`), "go<version>"},
	{regexp.MustCompile(`\b(linux|darwin|windows|freebsd|openbsd|netbsd)/(amd64|arm64|386|arm|riscv64|ppc64le|s390x)\b`), "<platform>"},
	{regexp.MustCompile(`\s+`), " "}, // column widths follow the values
}

// shape is line with what varies between runs replaced by placeholders.
func shape(line string) string {
	for _, r := range shapeRules {
		line = r.re.ReplaceAllString(line, r.repl)
	}
	return strings.TrimSpace(line)
}

// lineMatcher matches an actual line's shape against a shown line, whose "…" stands for
// any text.
func lineMatcher(want string) *regexp.Regexp {
	parts := strings.Split(shape(want), "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(`^` + strings.Join(parts, `.*`) + `$`)
}

// mismatch is where an output stopped having the shape README.md shows.
type mismatch struct {
	want outLine // the README line that found no match (line 0: the output has more lines)
	got  string  // the actual line there ("" when the output ended)
}

func (m mismatch) String() string {
	if m.want.line == 0 {
		return fmt.Sprintf("an unexpected output line: %q", m.got)
	}
	return fmt.Sprintf("README.md:%d shows %q (shape %q); the output has %q", m.want.line, m.want.text, shape(m.want.text), m.got)
}

// compare checks got (output lines, blank lines dropped) against want. A want line that
// is only "…" matches any run of lines, including none; the other lines must match in
// order. It returns nil when the shapes agree, else the README line that matched no
// output line on the path that got furthest through want.
func compare(want []outLine, got []string) *mismatch {
	var lines []string
	for _, g := range got {
		if strings.TrimSpace(g) != "" {
			lines = append(lines, g)
		}
	}
	matchers := make([]*regexp.Regexp, len(want))
	for i, w := range want {
		if strings.TrimSpace(w.text) != "…" {
			matchers[i] = lineMatcher(w.text)
		}
	}
	memo := map[[2]int]bool{}
	bestI, bestJ := -1, 0
	// match reports whether want[i:] matches lines[j:]; outputs are short, and memo keeps
	// the "…" backtracking polynomial.
	var match func(i, j int) bool
	match = func(i, j int) bool {
		key := [2]int{i, j}
		if v, ok := memo[key]; ok {
			return v
		}
		var ok bool
		switch {
		case i == len(want):
			ok = j == len(lines)
			if !ok && (bestI < i || j > bestJ) { // unexpected lines: report the last place
				bestI, bestJ = i, j
			}
		case matchers[i] == nil:
			ok = match(i+1, j) || j < len(lines) && match(i, j+1)
		case j < len(lines) && matchers[i].MatchString(shape(lines[j])):
			ok = match(i+1, j+1)
		default:
			if i > bestI {
				bestI, bestJ = i, j
			}
		}
		memo[key] = ok
		return ok
	}
	if match(0, 0) {
		return nil
	}
	if bestI == len(want) {
		return &mismatch{got: lines[bestJ]}
	}
	return &mismatch{want: want[bestI], got: at(lines, bestJ)}
}

func at(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "(end of output)"
}

func TestShape(t *testing.T) {
	for _, tc := range []struct {
		name, want, got string
		ok              bool
	}{
		{"same", "Published hello 1.0.0 as role version 2", "Published hello 1.0.0 as role version 2", true},
		{"other hash", "sha256 7194f237f7c671f02db4d3b9ff7edf5ac9eca5b0496773ace52d754761dd969e", "sha256 fa43393cc29ab487b5b7cf5f97ccec684d3d8a83ccf473cc0b37ae969b80ee90", true},
		{"other fingerprint", "SHA256:1337:1b4e:8749:daec:3b24:2fc7:85d1:1c8f:84d7:d6f9:3d21:d82e:7e1d:64bf:ef1f:c817", "SHA256:154d:74a1:a7af:1a1f:615a:d79f:71c6:35e7:ff13:aaa1:ccd1:c271:236d:f28e:e42e:426b", true},
		{"other time", "expires 2027-12-07 15:02 UTC (in 365 days)", "expires 2028-01-01 09:00 UTC (in 364 days)", true},
		{"other Go", "cairn (devel) go1.26.8 linux/amd64", "cairn (devel) go1.27 darwin/arm64", true},
		{"columns", "2.0.0    ok      hello-2.0.0.tar.gz  12", "2.0.0 ok hello-2.0.0.tar.gz 12", true},
		{"cut line", "Error response from registry: denied: token…", "Error response from registry: denied: token \"ci\" may not", true},
		{"other number", "in snapshot 4.", "in snapshot 5.", false},
		{"other word", "Published hello 1.0.0", "Uploaded hello 1.0.0", false},
		{"short hex is a word", "key abc", "key abd", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lineMatcher(tc.want).MatchString(shape(tc.got)); got != tc.ok {
				t.Errorf("%q against %q: match %v, want %v (shapes %q, %q)", tc.got, tc.want, got, tc.ok, shape(tc.got), shape(tc.want))
			}
		})
	}
}

func TestCompare(t *testing.T) {
	w := func(lines ...string) []outLine {
		var out []outLine
		for i, l := range lines {
			out = append(out, outLine{10 + i, l})
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		want      []outLine
		got       []string
		wantAt    int // README line of the mismatch; 0: none; -1: an unexpected line
		wantGotAt string
	}{
		{"equal", w("a", "b"), []string{"a", "", "b"}, 0, ""},
		{"nothing shown, nothing printed", nil, nil, 0, ""},
		{"nothing shown, something printed", nil, []string{"x"}, -1, "x"},
		{"missing line", w("a", "b"), []string{"a"}, 11, "(end of output)"},
		{"extra line", w("a"), []string{"a", "b"}, -1, "b"},
		{"wrong line", w("a", "b", "c"), []string{"a", "x", "c"}, 11, "x"},
		{"ellipsis in the middle", w("a", "…", "d"), []string{"a", "b", "c", "d"}, 0, ""},
		{"ellipsis for nothing", w("a", "…", "b"), []string{"a", "b"}, 0, ""},
		{"ellipsis first", w("…", "c"), []string{"a", "b", "c"}, 0, ""},
		{"ellipsis last", w("a", "…"), []string{"a", "b", "c"}, 0, ""},
		{"anchored end after ellipsis", w("a", "…", "c"), []string{"a", "c", "c", "x"}, -1, "x"},
		{"repeated line after ellipsis", w("…", "c"), []string{"c", "b", "c"}, 0, ""},
		{"run after ellipsis missing", w("a", "…", "c", "d", "…"), []string{"a", "c", "x"}, 13, "x"},
		{"two floating runs", w("…", "b", "…", "d", "…"), []string{"a", "b", "c", "d", "e"}, 0, ""},
		{"floating runs out of order", w("…", "d", "…", "b", "…"), []string{"a", "b", "c", "d", "e"}, 13, "e"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := compare(tc.want, tc.got)
			switch {
			case tc.wantAt == 0 && m != nil:
				t.Fatalf("mismatch %s, want none", m)
			case tc.wantAt == 0:
			case m == nil:
				t.Fatalf("no mismatch, want one at %d", tc.wantAt)
			case tc.wantAt == -1 && m.want.line != 0, tc.wantAt > 0 && m.want.line != tc.wantAt, m.got != tc.wantGotAt:
				t.Fatalf("mismatch %s (line %d, got %q); want line %d, got %q", m, m.want.line, m.got, tc.wantAt, tc.wantGotAt)
			}
		})
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, readme, wantErr string
		wantCmds              int
	}{
		{"console", "```console\n$ echo hi\nhi\n\n$ true\n```\n", "", 2},
		{"skipped sh", "<!-- readme-test: skip: needs a browser -->\n```sh\nmake screenshots\n```\n", "", 0},
		{"unmarked sh", "```sh\nmake run\n```\n", "shows commands", 0},
		{"plain block with a prompt", "```\n$ cairnd keys check\n```\n", "shows commands", 0},
		{"plain block without a prompt", "```\nroot (offline)\n```\n", "", 0},
		{"output before a command", "```console\nhi\n$ echo hi\n```\n", "output before the first", 0},
		{"unknown marker", "<!-- readme-test: run -->\n```console\n$ true\n```\n", "unknown marker", 0},
		{"marker far from its block", "<!-- readme-test: skip: x -->\ntext\n```console\n$ true\n```\n", "not right above", 0},
		{"marker above a non-command block", "<!-- readme-test: skip: x -->\n```yaml\na: b\n```\n", "shows no commands", 0},
		{"continued command", "```console\n$ echo \\\n```\n", "continued", 0},
		{"unclosed", "```console\n$ true\n", "never closed", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blocks, err := parse(tc.readme)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, b := range blocks {
				if b.skip == "" {
					n += len(b.cmds)
				}
			}
			if n != tc.wantCmds {
				t.Fatalf("%d commands to run, want %d: %+v", n, tc.wantCmds, blocks)
			}
		})
	}
}

// TestReadmeBlocksMarked: every block of README.md that shows commands runs, or says why
// not (fast: no server).
func TestReadmeBlocksMarked(t *testing.T) {
	text, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parse(string(text)); err != nil {
		t.Fatal(err)
	}
}
