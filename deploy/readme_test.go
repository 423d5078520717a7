package deploy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The files whose container lines testReadme runs: the lines proposed for
// the README (testdata), and the README and the deployment page once they
// hold lines of the image's (deploy/image.sh).
var readmeFiles = []string{"testdata/containers.md", "../README.md", "../docs/deploying.md"}

// shellLine is one command of a fenced sh block, continuations joined.
type shellLine struct {
	where   string   // file:line
	words   []string // split as the shell splits them, quotes removed
	text    string   // as written, without its comment
	comment string   // what the line says it does
}

var fence = regexp.MustCompile("(?s)```(?:sh|bash|console)\n(.*?)```")

// containerBlocks returns the fenced sh blocks of text that run a
// container (a line starting with docker or podman).
func containerBlocks(file, text string) [][]shellLine {
	var blocks [][]shellLine
	for _, m := range fence.FindAllStringSubmatchIndex(text, -1) {
		body := text[m[2]:m[3]]
		first := strings.Count(text[:m[2]], "\n") + 1
		var block []shellLine
		joined, start := "", 0
		for i, raw := range strings.Split(body, "\n") {
			if joined == "" {
				start = first + i
			}
			if cont, ok := strings.CutSuffix(raw, "\\"); ok {
				joined += cont + " "
				continue
			}
			joined += raw
			if l := parseShellLine(joined); l.text != "" {
				l.where = file + ":" + strconv.Itoa(start)
				block = append(block, l)
			}
			joined = ""
		}
		if slices.ContainsFunc(block, func(l shellLine) bool { return l.words[0] == "docker" || l.words[0] == "podman" }) {
			blocks = append(blocks, block)
		}
	}
	return blocks
}

// parseShellLine splits a line into words, quotes as the shell reads them,
// and cuts its comment (a # after a blank, outside quotes).
func parseShellLine(line string) shellLine {
	var l shellLine
	var word strings.Builder
	inWord := false
	var quote rune
	for i, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			word.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == '#' && !inWord:
			l.comment = strings.TrimSpace(line[i+1:])
			l.text = strings.TrimSpace(line[:i])
			return l
		case r == ' ' || r == '\t':
			if inWord {
				l.words = append(l.words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		l.words = append(l.words, word.String())
	}
	l.text = strings.TrimSpace(line)
	return l
}

// readmeRun runs one file's container lines, in order, as a reader would:
// docker is podman here, and every name and port is made this test's own.
type readmeRun struct {
	t      *testing.T
	p      *podman
	image  string
	prefix string            // of this file's names
	names  map[string]string // the README's container and network names → this test's
	ports  map[string]string // the README's host ports → where podman published them
}

// testReadme runs the container lines of each file that has them.
func testReadme(t *testing.T, p *podman, image string) {
	for i, file := range readmeFiles {
		t.Run(filepath.Base(file), func(t *testing.T) {
			b, err := os.ReadFile(file)
			if os.IsNotExist(err) && i > 0 {
				t.Skipf("%s does not exist yet", file)
			}
			if err != nil {
				t.Fatal(err)
			}
			blocks := containerBlocks(file, string(b))
			if len(blocks) == 0 && i == 0 {
				t.Fatalf("%s has no container lines", file)
			}
			if len(blocks) > 0 && !strings.Contains(string(b), "bash deploy/image.sh") {
				t.Skipf("PENDING: %s's container lines predate deploy/image.sh (docker build, an example proxy at 10.0.0.6, "+
					"which this test may not send to); the deploy branch's report gives the lines that replace them, "+
					"which %s holds and this test runs", file, readmeFiles[0])
			}
			r := &readmeRun{t: t, p: p, image: image, prefix: "r" + strconv.Itoa(i), names: map[string]string{}, ports: map[string]string{}}
			for _, block := range blocks {
				for _, l := range block {
					r.line(l)
				}
			}
		})
	}
}

// line runs one line and checks what its comment says.
func (r *readmeRun) line(l shellLine) {
	t := r.t
	t.Helper()
	t.Logf("%s: %s", l.where, l.text)
	w := l.words
	switch {
	case len(w) >= 2 && w[0] == "bash" && w[1] == "deploy/image.sh":
		// The test built the image with this script already, under a tag
		// of its own: the README's discal:latest may be the reader's.
		if len(w) > 2 && w[2] != "discal:latest" {
			t.Fatalf("%s: image.sh builds %s; the lines after it run discal:latest", l.where, w[2])
		}
	case w[0] == "docker" || w[0] == "podman":
		r.engine(l)
	case w[0] == "udpclient":
		r.client(l, append([]string{bin(t, "udpclient")}, r.hostAddrs(w[1:])...))
	case strings.Contains(l.text, "| nc "):
		if _, err := exec.LookPath("nc"); err != nil {
			t.Logf("%s: nc is not installed: this line is not checked (.ci/run installs netcat-openbsd)", l.where)
			return
		}
		r.client(l, []string{"bash", "-c", strings.Join(r.hostAddrs(strings.Fields(l.text)), " ")})
	default:
		t.Fatalf("%s: the container test does not know how to run %q: teach it, or the README says something untested", l.where, l.text)
	}
}

// engine runs a docker (or podman) line through podman.
func (r *readmeRun) engine(l shellLine) {
	t := r.t
	t.Helper()
	w := l.words[1:]
	if len(w) >= 2 && w[0] == "--runtime" { // podman --runtime runc, as written for these machines
		w = w[2:]
	}
	switch {
	case len(w) >= 1 && w[0] == "run":
		r.run(l, w[1:])
	case len(w) >= 2 && w[0] == "stop":
		names := r.mapped(l, w[1:])
		r.p.must(t, append([]string{"stop", "-t", "15"}, names...)...)
		if !strings.Contains(l.comment, "exits 0") {
			t.Errorf("%s: a stop line that does not say what it does (drains, then exits 0)", l.where)
		}
		for _, n := range names {
			checkStopped(t, r.p, n, "draining")
		}
	case len(w) >= 2 && w[0] == "rm":
		r.p.must(t, append([]string{"rm"}, r.mapped(l, w[1:])...)...)
	case len(w) == 3 && w[0] == "network" && w[1] == "create":
		r.names[w[2]] = r.p.name(r.prefix + "-" + w[2])
		r.p.network(t, r.names[w[2]])
	case len(w) == 3 && w[0] == "network" && w[1] == "rm":
		r.p.must(t, "network", "rm", r.mapped(l, w[2:])[0])
	default:
		t.Fatalf("%s: the container test does not know how to run %q", l.where, l.text)
	}
}

// mapped returns this test's names for the README's.
func (r *readmeRun) mapped(l shellLine, names []string) []string {
	var out []string
	for _, n := range names {
		m, ok := r.names[n]
		if !ok {
			r.t.Fatalf("%s: %s was not made by an earlier line", l.where, n)
		}
		out = append(out, m)
	}
	return out
}

// flagsWithValue are the docker run flags the lines may use that take a
// value, so that the image is the first word after them that is no flag.
var flagsWithValue = map[string]bool{"--name": true, "--network": true, "-p": true, "--publish": true,
	"--entrypoint": true, "-e": true, "--env": true, "-v": true, "--volume": true, "--hostname": true, "--ulimit": true}

// run runs a docker run line: detached (a foreground line is the same
// container, which the test then stops), named, on this test's network,
// its ports published on 127.0.0.1 at ports of the kernel's choosing, the
// test's image, and the README's container names in its arguments made
// this test's.
func (r *readmeRun) run(l shellLine, w []string) {
	t := r.t
	t.Helper()
	args := []string{"run", "-d"}
	var name string
	published := map[string]string{} // container port → the README's host port
	i := 0
	for ; i < len(w) && strings.HasPrefix(w[i], "-"); i++ {
		f := w[i]
		if !flagsWithValue[f] {
			if f != "-d" && f != "--detach" {
				args = append(args, f)
			}
			continue
		}
		if i+1 >= len(w) {
			t.Fatalf("%s: %s without a value", l.where, f)
		}
		v := w[i+1]
		i++
		switch f {
		case "--name":
			name = r.p.name(r.prefix + "-" + v)
			r.names[v] = name
			continue
		case "--network":
			v = r.mapped(l, []string{v})[0]
		case "-p", "--publish":
			host, cport := publishedPort(t, l, v)
			published[cport] = host
			v = "127.0.0.1::" + cport
		}
		args = append(args, f, v)
	}
	if i >= len(w) || w[i] != "discal:latest" {
		t.Fatalf("%s: the image is not discal:latest, which deploy/image.sh builds", l.where)
	}
	if name == "" {
		name = r.p.name(r.prefix + "-" + strconv.Itoa(len(r.names)))
		r.names[name] = name
	}
	args = append(args, "--name", r.p.container(t, name), r.image)
	if err := checkTargets(w[i+1:]); err != nil {
		t.Fatalf("%s: %q %v: the test will not run it", l.where, l.text, err)
	}
	args = append(args, r.containerNames(w[i+1:])...)
	r.p.must(t, args...)
	for cport, host := range published {
		r.ports[host] = r.p.hostPort(t, name, cport)
	}
}

// checkTargets refuses arguments that would send anywhere but loopback or
// a container by name: an example address (a proxy at 10.0.0.6) is
// someone's real host, and tests send only to this machine.
func checkTargets(args []string) error {
	for _, a := range args {
		for _, part := range strings.FieldsFunc(a, func(r rune) bool { return r == ',' || r == '=' }) {
			host := part
			if h, _, err := net.SplitHostPort(part); err == nil {
				host = h
			}
			if ip, err := netip.ParseAddr(host); err == nil && !ip.IsLoopback() && !ip.IsUnspecified() {
				return fmt.Errorf("would send to %s, not this machine", ip)
			}
		}
	}
	return nil
}

// publishedPort reads -p's HOST:CONTAINER[/proto] (or CONTAINER alone).
func publishedPort(t *testing.T, l shellLine, v string) (host, cport string) {
	t.Helper()
	parts := strings.Split(v, ":")
	cport = parts[len(parts)-1]
	if !strings.Contains(cport, "/") {
		cport += "/tcp"
	}
	host = strings.SplitN(cport, "/", 2)[0]
	if len(parts) >= 2 && parts[len(parts)-2] != "" {
		host = parts[len(parts)-2]
	}
	return host, cport
}

// containerNames makes the README's container names in arguments this
// test's: -server s1:7001,s1:7101.
func (r *readmeRun) containerNames(args []string) []string {
	out := slices.Clone(args)
	for from, to := range r.names {
		re := regexp.MustCompile(`(^|[,=])` + regexp.QuoteMeta(from) + `:`)
		for i := range out {
			out[i] = re.ReplaceAllString(out[i], "${1}"+to+":")
		}
	}
	return out
}

// hostAddrs makes the README's host ports (127.0.0.1:7000, or nc's
// 127.0.0.1 7000) where podman published them.
func (r *readmeRun) hostAddrs(words []string) []string {
	out := slices.Clone(words)
	for i, w := range out {
		if host, ok := strings.CutPrefix(w, "127.0.0.1:"); ok && r.ports[host] != "" {
			out[i] = r.ports[host]
		}
		if w == "127.0.0.1" && i+1 < len(out) && r.ports[out[i+1]] != "" {
			_, port, _ := strings.Cut(r.ports[out[i+1]], ":")
			out[i+1] = port
		}
	}
	return out
}

// client runs a client line until it prints what its comment says, for
// at most 20 seconds: the containers may still be starting.
func (r *readmeRun) client(l shellLine, argv []string) {
	t := r.t
	t.Helper()
	want := strings.Fields(l.comment)
	if len(want) == 0 {
		t.Fatalf("%s: a client line whose comment does not say the answer", l.where)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		cancel()
		if got := strings.TrimSpace(string(out)); err == nil && got == want[0] {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("%s: %q printed %q (%v), the README says %s", l.where, strings.Join(argv, " "), got, err, want[0])
		}
		time.Sleep(200 * time.Millisecond) // a poll interval
	}
}

// TestReadmeLines: the container lines are read as the shell reads them
// (continuations, quotes, comments), and an address off this machine is
// refused before anything runs. No engine needed.
func TestReadmeLines(t *testing.T) {
	text := "x\n```sh\necho no container here\n```\n```sh\n" +
		"docker run -d --name p -p 7000:7000/udp discal:latest \\\n    -addr 0.0.0.0:7000 -server s1:7001,s1:7101\n" +
		"printf '6 * 7\\n' | nc -u -w1 127.0.0.1 7000   # 42\n```\n"
	blocks := containerBlocks("doc.md", text)
	if len(blocks) != 1 || len(blocks[0]) != 2 {
		t.Fatalf("blocks %+v, want the one with a docker line, of two lines", blocks)
	}
	run, nc := blocks[0][0], blocks[0][1]
	if run.where != "doc.md:6" || len(run.words) != 12 || run.words[11] != "s1:7001,s1:7101" || run.comment != "" {
		t.Errorf("the continued run line: %+v", run)
	}
	if nc.words[1] != `6 * 7\n` || nc.comment != "42" || strings.Contains(nc.text, "#") {
		t.Errorf("the nc line: %+v", nc)
	}
	for _, tt := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"-addr", "0.0.0.0:7000", "-server", "s1:7001,s1:7101"}, true},
		{[]string{"-server", "127.0.0.1:7001,127.0.0.1:7101", "-http-addr=[::]:9100"}, true},
		{[]string{"-server", "10.0.0.6:7001,10.0.0.6:7101"}, false},
		{[]string{"-join=192.168.1.5:7000"}, false},
		{[]string{"-allow", "8.8.8.8"}, false},
	} {
		if err := checkTargets(tt.args); (err == nil) != tt.ok {
			t.Errorf("checkTargets(%q) = %v, want ok %v", tt.args, err, tt.ok)
		}
	}
	for _, tt := range []struct{ in, host, cport string }{
		{"7001:7001/udp", "7001", "7001/udp"},
		{"127.0.0.1:7000:7000/udp", "7000", "7000/udp"},
		{"9100", "9100", "9100/tcp"},
		{"8080:9100", "8080", "9100/tcp"},
	} {
		if host, cport := publishedPort(t, shellLine{}, tt.in); host != tt.host || cport != tt.cport {
			t.Errorf("-p %s: host %s, container %s; want %s, %s", tt.in, host, cport, tt.host, tt.cport)
		}
	}
}
