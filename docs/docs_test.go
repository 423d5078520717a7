// Package docs holds discal's reference pages. Its tests hold the pages
// together and to the code: every relative link and #anchor resolves, the
// README stays a front door, and the tables that name the code's
// /status.json keys, metrics and grammar examples say what the code does.
package docs

import (
	"bufio"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/cli"
	"github.com/discal/discal/udpproxy"
	"github.com/discal/discal/udpproxy/dashboard"
	"github.com/discal/discal/udpserver"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// maxReadme is the bound on the README: a front door, with the
// reference in docs/ (CoreDNS's README is 345 lines).
const maxReadme = 400

// page is one Markdown file: its lines outside code fences, numbered from 1,
// and the anchors of its headings.
type page struct {
	path    string
	lines   map[int]string
	anchors map[string]bool
}

var (
	heading = regexp.MustCompile(`^#{1,6} +(.*?) *#*$`)
	// link is the target of an inline link or image: [text](target) or
	// [text](target "title").
	link     = regexp.MustCompile(`\]\(([^)\s]+)(?: +"[^"]*")?\)`)
	codeSpan = regexp.MustCompile("`[^`]*`")
	// linkText keeps the text of a link in a heading, as GitHub's anchor
	// does.
	linkText = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
)

// readme is the README's path from docs/, where the tests run.
var readme = filepath.Join("..", "README.md")

// pages reads README.md and every docs/*.md, by absolute path, so that a
// link from the README and one from a page name a file alike.
func pages(t *testing.T) map[string]*page {
	t.Helper()
	files, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]*page{}
	for _, f := range append(files, readme) {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		all[abs] = readPage(t, f)
	}
	return all
}

// readPage reads one Markdown file, leaving out fenced code, where a # is a
// shell comment and brackets are not links.
func readPage(t *testing.T, path string) *page {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := &page{path: path, lines: map[int]string{}, anchors: map[string]bool{}}
	seen := map[string]int{}
	fenced := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if trimmed := strings.TrimSpace(line); strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		p.lines[n] = line
		if m := heading.FindStringSubmatch(line); m != nil {
			a := anchor(m[1])
			// GitHub numbers a repeated heading's anchor: x, x-1, x-2.
			if k := seen[a]; k > 0 {
				p.anchors[a+"-"+strconv.Itoa(k)] = true
			} else {
				p.anchors[a] = true
			}
			seen[a]++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return p
}

// anchor is GitHub's anchor for a heading: the text of its links, lower
// case, spaces as hyphens, and nothing but letters, digits, marks, hyphens
// and underscores.
func anchor(h string) string {
	h = linkText.ReplaceAllString(h, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestLinks: every relative link and image in the README and docs/ names a
// file that exists, and every #anchor a heading of its page.
func TestLinks(t *testing.T) {
	all := pages(t)
	checked := 0
	for path, p := range all {
		for n, line := range p.lines {
			for _, m := range link.FindAllStringSubmatch(codeSpan.ReplaceAllString(line, ""), -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				checked++
				if err := resolve(all, path, target); err != nil {
					t.Errorf("%s:%d: %s: %v", p.path, n, target, err)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no relative links found: the pages were not read")
	}
}

// resolve checks one link target from the page at from.
func resolve(all map[string]*page, from, target string) error {
	file, frag, _ := strings.Cut(target, "#")
	to := from
	if file != "" {
		to = filepath.Join(filepath.Dir(from), file)
		if _, err := os.Stat(to); err != nil {
			return err
		}
	}
	if frag == "" {
		return nil
	}
	p, ok := all[to]
	if !ok {
		return errors.New("an anchor into a file that is not one of the pages")
	}
	if !p.anchors[frag] {
		return errors.New("no such heading")
	}
	return nil
}

// TestReadme: the README is a front door, and every page is linked from
// it and starts with its title.
func TestReadme(t *testing.T) {
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n > maxReadme {
		t.Errorf("README.md has %d lines, at most %d: move the reference to docs/", n, maxReadme)
	}
	for _, p := range pages(t) {
		if p.path == readme {
			continue
		}
		if !strings.Contains(string(b), "](docs/"+p.path) {
			t.Errorf("the README does not link to docs/%s", p.path)
		}
		if first := p.lines[1]; !strings.HasPrefix(first, "# ") {
			t.Errorf("docs/%s starts with %q, not a title", p.path, first)
		}
	}
}

// table returns the rows of the table in file whose header row is header,
// each split into its cells.
func table(t *testing.T, file, header string) [][]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "\n"+header+"\n")
	if !ok {
		t.Fatalf("%s has no table headed %q", file, header)
	}
	var rows [][]string
	for i, line := range strings.Split(after, "\n") {
		if !strings.HasPrefix(line, "|") {
			break
		}
		if i == 0 { // the |---| line
			continue
		}
		rows = append(rows, strings.Split(strings.Trim(line, "|"), "|"))
	}
	if len(rows) == 0 {
		t.Fatalf("the table headed %q in %s is empty", header, file)
	}
	return rows
}

// spans returns the code spans of a cell, without their backticks.
func spans(cell string) []string {
	var out []string
	for _, s := range codeSpan.FindAllString(cell, -1) {
		out = append(out, strings.Trim(s, "`"))
	}
	return out
}

// TestGrammarExamples: every expression the grammar table accepts parses,
// and every one it refuses is a syntax error (code 10).
func TestGrammarExamples(t *testing.T) {
	for _, row := range table(t, "protocol.md", "| accepted | is | refused (code 10) | why |") {
		for col, wantErr := range map[int]bool{0: false, 2: true} {
			for _, s := range spans(row[col]) {
				in, err := strconv.Unquote(`"` + s + `"`) // `6*7\r\n` is written with escapes
				if err != nil {
					t.Fatalf("example %q: %v", s, err)
				}
				_, err = codec.ParseExpr(in)
				var e *codec.Error
				switch {
				case !wantErr && err != nil:
					t.Errorf("%q is accepted, says the table; ParseExpr: %v", in, err)
				case wantErr && (!errors.As(err, &e) || e.Code != codec.CodeSyntax):
					t.Errorf("%q is refused with code 10, says the table; ParseExpr: %v", in, err)
				}
			}
		}
	}
}

// TestStatusJSONKeys: the table of /status.json keys names exactly the keys
// the dashboard serves, for the proxy and for each server.
func TestStatusJSONKeys(t *testing.T) {
	var documented, servers []string
	for _, row := range table(t, "operating.md", "| key | meaning |") {
		keys := spans(row[0])
		if len(keys) > 0 && strings.HasPrefix(keys[0], "servers[].") {
			keys[0] = strings.TrimPrefix(keys[0], "servers[].")
			servers = append(servers, keys...)
			continue
		}
		documented = append(documented, keys...)
	}
	// What the dashboard serves: the proxy's Stats and the keys it adds.
	h := dashboard.NewWithConfig(oneServer{}, dashboard.Config{})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/status.json", nil)
	req.Host = "127.0.0.1" // the dashboard answers only names it knows
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("/status.json: %d %s", rec.Code, rec.Body)
	}
	b := rec.Body.Bytes()
	var doc struct {
		Servers []map[string]any `json:"servers"`
	}
	var top map[string]any
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil || len(doc.Servers) != 1 {
		t.Fatalf("%s: %v", b, err)
	}
	sameSet(t, "/status.json keys", documented, keysOf(top))
	sameSet(t, "/status.json server keys", servers, keysOf(doc.Servers[0]))
}

// oneServer is a proxy's status with one server, for the dashboard.
type oneServer struct{}

func (oneServer) Stats() udpproxy.Stats        { return udpproxy.Stats{Servers: []udpproxy.ServerStats{{}}} }
func (oneServer) Ready() (ok bool, why string) { return true, "" }

func keysOf(m map[string]any) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	return k
}

// sameSet fails t unless the documented names and the code's are the same.
func sameSet(t *testing.T, what string, documented, code []string) {
	t.Helper()
	for _, c := range code {
		if !slices.Contains(documented, c) {
			t.Errorf("%s: %q is in the code, not in the docs", what, c)
		}
	}
	for _, d := range documented {
		if !slices.Contains(code, d) {
			t.Errorf("%s: %q is in the docs, not in the code", what, d)
		}
	}
}

// TestMetrics: operating.md lists every metric the proxy and the server
// export, and no page names one they do not.
func TestMetrics(t *testing.T) {
	p, err := udpproxy.New(udpproxy.Config{Servers: []udpproxy.ServerAddr{{Calc: "127.0.0.1:7001", Status: "127.0.0.1:7101"}}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := udpserver.New(udpserver.Config{Name: "s1", Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	code := append(metricNames(p.Collector(), s.Collector()), httpMetricNames(t)...)
	if len(code) < 10 {
		t.Fatalf("only %d metrics described: %v", len(code), code)
	}
	name := regexp.MustCompile("`(discal_[a-z0-9_]+)")
	for _, p := range pages(t) {
		b, err := os.ReadFile(p.path)
		if err != nil {
			t.Fatal(err)
		}
		var named []string
		for _, m := range name.FindAllStringSubmatch(string(b), -1) {
			named = append(named, m[1])
		}
		if p.path == "operating.md" {
			sameSet(t, "metrics in operating.md", named, code)
			continue
		}
		for _, n := range named {
			if !slices.Contains(code, n) {
				t.Errorf("%s names the metric %q, which the code does not export", p.path, n)
			}
		}
	}
}

// httpMetricNames returns the names of discal's metrics that every
// binary's HTTP listener adds to its daemon's (discal_build_info), from
// its /metrics.
func httpMetricNames(t *testing.T) []string {
	t.Helper()
	h, err := cli.NewHTTP("docs", nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	typ := regexp.MustCompile(`(?m)^# TYPE (discal_[a-z0-9_]+) `)
	var names []string
	for _, m := range typ.FindAllStringSubmatch(rec.Body.String(), -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatalf("/metrics without a collector of its own holds no discal_ metric:\n%s", rec.Body.String())
	}
	return names
}

// metricNames returns the names of the metrics the collectors describe.
func metricNames(cs ...prometheus.Collector) []string {
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	var names []string
	for _, c := range cs {
		ch := make(chan *prometheus.Desc, 64)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			if m := fq.FindStringSubmatch(d.String()); m != nil {
				names = append(names, m[1])
			}
		}
	}
	return names
}
