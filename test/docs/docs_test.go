package docs

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// root is the repository's root, relative to this package's directory.
const root = "../.."

// markdownFiles returns the repository's *.md files, relative to root.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".md") {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 5 {
		t.Fatalf("found only %v: is root %q the repository?", out, root)
	}
	return out
}

// prose returns the lines of a Markdown file outside fenced code blocks, with inline code spans
// blanked out, so that neither is read as a link or a heading. The line numbers are kept.
func prose(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	fence := ""
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		trim := strings.TrimSpace(l)
		switch {
		case fence != "":
			if strings.HasPrefix(trim, fence) {
				fence = ""
			}
			l = ""
		case strings.HasPrefix(trim, "```") || strings.HasPrefix(trim, "~~~"):
			fence = trim[:3]
			l = ""
		}
		out = append(out, codeSpan.ReplaceAllString(l, "``"))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

var (
	codeSpan = regexp.MustCompile("`[^`]*`")
	link     = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	heading  = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
)

// slug is GitHub's anchor for a heading's text: lower case, punctuation dropped, spaces as
// hyphens.
func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestRelativeLinksResolve: every relative link in every *.md file names a file or directory that
// exists, and a #fragment names a heading of the Markdown file it points into.
func TestRelativeLinksResolve(t *testing.T) {
	files := markdownFiles(t)
	checked := 0
	for _, md := range files {
		for n, l := range prose(t, md) {
			for _, m := range link.FindAllStringSubmatch(l, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				checked++
				where := md + ":" + strconv.Itoa(n+1)
				path, frag, _ := strings.Cut(target, "#")
				file := md
				if path != "" {
					if strings.HasPrefix(path, "/") {
						t.Errorf("%s: %s is absolute; links in the repository are relative", where, target)
						continue
					}
					file = filepath.Join(filepath.Dir(md), filepath.FromSlash(path))
					if _, err := os.Stat(filepath.Join(root, file)); err != nil {
						t.Errorf("%s: %s does not resolve: %v", where, target, err)
						continue
					}
				}
				if frag != "" {
					if !strings.HasSuffix(file, ".md") {
						continue
					}
					if !headingAnchors(t, file)[frag] {
						t.Errorf("%s: %s: %s has no heading with the anchor #%s", where, target, file, frag)
					}
				}
			}
		}
	}
	if checked < 10 {
		t.Errorf("only %d relative links checked in %d files: is the link pattern right?", checked, len(files))
	}
}

// headingAnchors returns the anchors GitHub makes for the headings of a Markdown file, a repeated
// one suffixed -1, -2, ...; headings are found outside code blocks, and their text read raw (GitHub
// keeps the text inside backticks in the anchor).
func headingAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	raw := strings.Split(string(b), "\n")
	out := map[string]bool{}
	seen := map[string]int{}
	for i, l := range prose(t, path) {
		if heading.MatchString(l) && i < len(raw) {
			s := slug(heading.FindStringSubmatch(raw[i])[1])
			a := s
			if k := seen[s]; k > 0 {
				a = s + "-" + strconv.Itoa(k)
			}
			seen[s]++
			out[a] = true
		}
	}
	return out
}

// TestLayoutListsEveryPackage: the README's Layout table has a row for every directory that holds
// a Go package (testdata aside), and every path it lists exists.
func TestLayoutListsEveryPackage(t *testing.T) {
	listed := map[string]bool{}
	in := false
	row := regexp.MustCompile("^\\| `([^`]+)` \\|")
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "## ") {
			in = l == "## Layout"
			continue
		}
		if m := row.FindStringSubmatch(l); in && m != nil {
			p := strings.TrimSuffix(m[1], "/")
			listed[p] = true
			if _, err := os.Stat(filepath.Join(root, p)); err != nil {
				t.Errorf("the Layout lists %s, which is not there", m[1])
			}
		}
	}
	if len(listed) == 0 {
		t.Fatal("README.md has no Layout table with `path` rows")
	}
	pkgs := map[string]bool{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".go") {
			rel, err := filepath.Rel(root, filepath.Dir(path))
			if err != nil {
				return err
			}
			pkgs[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for p := range pkgs {
		if !listed[p] && p != "." {
			missing = append(missing, p+"/")
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("README.md's Layout has no row for %v", missing)
	}
}
