package deploy

import (
	"debug/elf"
	"encoding/json"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dockerfile is the parts of ../Dockerfile the tests check.
type dockerfile struct {
	froms      []string // each stage's base image
	buildRun   string   // the RUN that builds the binaries
	user       string
	entrypoint []string
	cmd        []string
	copied     []string // what the last stage copies to /
}

// parseDockerfile reads instructions, joining continued lines. It knows
// only what discal's Dockerfile uses.
func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	var d dockerfile
	text := strings.ReplaceAll(repoFile(t, "Dockerfile"), "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		op, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(op) {
		case "FROM":
			d.froms = append(d.froms, strings.Fields(rest)[0])
		case "RUN":
			if strings.Contains(rest, "go build") {
				d.buildRun = rest
			}
		case "USER":
			d.user = rest
		case "ENTRYPOINT":
			d.entrypoint = jsonArray(t, rest)
		case "CMD":
			d.cmd = jsonArray(t, rest)
		case "COPY":
			if f := strings.Fields(rest); strings.HasPrefix(f[0], "--from=") && f[len(f)-1] == "/" {
				for _, src := range f[1 : len(f)-1] {
					d.copied = append(d.copied, "/"+src[strings.LastIndex(src, "/")+1:])
				}
			}
		}
	}
	return d
}

func jsonArray(t *testing.T, s string) []string {
	t.Helper()
	var a []string
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		t.Fatalf("Dockerfile: %q is not the exec form (a JSON array): %v", s, err)
	}
	return a
}

// TestDockerfile checks what can be checked without a Docker engine (there
// is none on CI's machine, so the image itself is not built here): a Go
// build stage, CGO_ENABLED=0, the three commands, a minimal non-root final
// stage, and flags the entry point really has.
func TestDockerfile(t *testing.T) {
	d := parseDockerfile(t)
	if len(d.froms) != 2 || !strings.HasPrefix(d.froms[0], "golang:") {
		t.Errorf("stages from %q: want a golang build stage and a final one", d.froms)
	}
	if final := d.froms[len(d.froms)-1]; final != "scratch" && !strings.HasPrefix(final, "gcr.io/distroless/static") {
		t.Errorf("final stage from %q: want scratch or distroless static", final)
	}
	if !strings.Contains(d.buildRun, "CGO_ENABLED=0") {
		t.Errorf("the build (%q) does not set CGO_ENABLED=0", d.buildRun)
	}
	for _, c := range images {
		if !strings.Contains(d.buildRun, "./cmd/"+c) {
			t.Errorf("the build does not build ./cmd/%s", c)
		}
		if !slices.Contains(d.copied, "/"+c) {
			t.Errorf("the final stage does not copy %s to / (it copies %q)", c, d.copied)
		}
	}
	if u, _, _ := strings.Cut(d.user, ":"); u == "" || u == "0" || u == "root" {
		t.Errorf("USER %q: the image must not run as root", d.user)
	}
	if len(d.entrypoint) != 1 || !slices.Contains(d.copied, d.entrypoint[0]) {
		t.Fatalf("ENTRYPOINT %q is not one of the copied binaries %q", d.entrypoint, d.copied)
	}
	if pending := checkFlags(t, "Dockerfile CMD", strings.TrimPrefix(d.entrypoint[0], "/"), d.cmd); len(pending) > 0 {
		t.Skipf("everything else agrees; %s: %s", strings.Join(pending, ", "), httpAddrPending)
	}
}

// TestStaticBinaries: the binaries built as the Dockerfile builds them run
// in an image with no C library: no ELF interpreter, no shared libraries.
func TestStaticBinaries(t *testing.T) {
	for _, name := range images {
		t.Run(name, func(t *testing.T) {
			path := bin(t, name)
			f, err := elf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Errorf("%s has an ELF interpreter: it is dynamically linked", name)
				}
			}
			if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
				t.Errorf("%s needs shared libraries %q (%v)", name, libs, err)
			}
			// file(1), where it is installed, says the same in words.
			if out, err := exec.Command("file", "-b", path).Output(); err == nil &&
				!regexp.MustCompile(`statically linked|static-pie linked`).Match(out) {
				t.Errorf("file says %s is %s", name, out)
			}
		})
	}
}
