package deploy

import (
	"debug/elf"
	"encoding/json"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// dockerfile is the parts of ../Dockerfile the tests check.
type dockerfile struct {
	froms      []string // each stage's base image
	user       string
	env        map[string]string
	entrypoint []string
	cmd        []string
	copied     []string // what is copied to /
}

// parseDockerfile reads instructions, joining continued lines. It knows
// only what discal's Dockerfile uses.
func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	d := dockerfile{env: map[string]string{}}
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
		case "ENV":
			k, v, _ := strings.Cut(rest, "=")
			d.env[k] = v
		case "USER":
			d.user = rest
		case "ENTRYPOINT":
			d.entrypoint = jsonArray(t, rest)
		case "CMD":
			d.cmd = jsonArray(t, rest)
		case "COPY":
			if f := strings.Fields(rest); f[len(f)-1] == "/" {
				for _, src := range f[:len(f)-1] {
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

// TestDockerfile checks the image's recipe without an engine (the
// container test builds and runs it): deploy/image.sh builds the three
// commands static, the Dockerfile copies them into an empty image (nothing
// to pull), runs them as a numeric non-root user, and its CMD and ENV name
// flags the entry point really has.
func TestDockerfile(t *testing.T) {
	d := parseDockerfile(t)
	if len(d.froms) != 1 || d.froms[0] != "scratch" {
		t.Errorf("stages from %q: want one, FROM scratch, which builds offline", d.froms)
	}
	script := readFile(t, "image.sh")
	if !strings.Contains(script, "CGO_ENABLED=0 go build") {
		t.Error("deploy/image.sh does not build with CGO_ENABLED=0")
	}
	for _, c := range images {
		if !strings.Contains(script, "./cmd/"+c) {
			t.Errorf("deploy/image.sh does not build ./cmd/%s", c)
		}
		if !slices.Contains(d.copied, "/"+c) {
			t.Errorf("the image does not hold /%s (it copies %q)", c, d.copied)
		}
	}
	if u, g, _ := strings.Cut(d.user, ":"); !numeric(u) || !numeric(g) || u == "0" {
		t.Errorf("USER %q: want a numeric user and group, not root", d.user)
	}
	if len(d.entrypoint) != 1 || !slices.Contains(d.copied, d.entrypoint[0]) {
		t.Fatalf("ENTRYPOINT %q is not one of the copied binaries %q", d.entrypoint, d.copied)
	}
	entry := strings.TrimPrefix(d.entrypoint[0], "/")
	checkFlags(t, "Dockerfile CMD", entry, d.cmd)
	for k := range d.env {
		name, ok := strings.CutPrefix(k, "DISCAL_")
		if !ok || !flagsOf(t, entry)[strings.ReplaceAll(strings.ToLower(name), "_", "-")] {
			t.Errorf("Dockerfile ENV %s names no flag of %s", k, entry)
		}
	}
}

func numeric(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
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
