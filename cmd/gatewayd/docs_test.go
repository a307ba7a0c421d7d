package main

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// subcommands returns the subcommands run dispatches on: the string cases of the switch in
// main.go's run, so that a new one cannot be missed by the man page or the completion.
func subcommands(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		fn, ok := n.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "run" {
			return true
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			if cc, ok := n.(*ast.CaseClause); ok {
				for _, e := range cc.List {
					if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						s, _ := strconv.Unquote(lit.Value)
						out = append(out, s)
					}
				}
			}
			return true
		})
		return false
	})
	if len(out) < 7 {
		t.Fatalf("found only %v in main.go's run", out)
	}
	sort.Strings(out)
	return out
}

// flagsOf returns the flags `gatewayd SUB -h` lists (none for a subcommand without flags).
func flagsOf(t *testing.T, sub string) []string {
	t.Helper()
	args := []string{sub, "-h"}
	if sub == "run" {
		args = []string{"-h"}
	}
	var out, errb bytes.Buffer
	if code := run(args, &out, &errb); code == 0 {
		return nil // version, help: no flag set
	}
	var flags []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z][a-z-]*)`).FindAllStringSubmatch(errb.String(), -1) {
		flags = append(flags, m[1])
	}
	if len(flags) == 0 {
		t.Fatalf("gatewayd %v -h listed no flags:\n%s", sub, errb.String())
	}
	return flags
}

// gatewayd(8) names every subcommand and every flag the binary has.
func TestManPageListsEveryCommand(t *testing.T) {
	page, err := os.ReadFile("../../docs/man/gatewayd.8")
	if err != nil {
		t.Fatal(err)
	}
	src := string(page)
	for _, sub := range subcommands(t) {
		if !regexp.MustCompile(`(?m)^\..*\bCm ` + regexp.QuoteMeta(sub) + `\b`).MatchString(src) {
			t.Errorf("gatewayd(8) has no .Cm %s", sub)
		}
		for _, f := range flagsOf(t, sub) {
			if !regexp.MustCompile(`(?m)Fl ` + regexp.QuoteMeta(f) + `(?:\s|$)`).MatchString(src) {
				t.Errorf("gatewayd(8) has no Fl %s (of %s)", f, sub)
			}
		}
	}
}

// complete runs the bash completion for the words and returns what it offers for the last.
func complete(t *testing.T, words ...string) []string {
	t.Helper()
	script := `source ../../deploy/completion/gatewayd.bash
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _gatewayd; printf '%s\n' "${COMPREPLY[@]}"`
	out, err := exec.Command("bash", append([]string{"-c", script, "bash"}, words...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("completion of %q: %v\n%s", words, err, out)
	}
	return strings.Fields(string(out))
}

// The bash completion offers every subcommand, and for each every flag the binary has.
func TestCompletionListsEveryCommand(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not installed: the completion is not checked")
	}
	offered := complete(t, "gatewayd", "")
	for _, sub := range subcommands(t) {
		if !has(offered, sub) {
			t.Errorf("gatewayd <TAB> offers %v, not %s", offered, sub)
		}
		words := []string{"gatewayd", sub, "-"}
		if sub == "run" {
			words = []string{"gatewayd", "-"}
		}
		got := complete(t, words...)
		for _, f := range flagsOf(t, sub) {
			if !has(got, "-"+f) {
				t.Errorf("%s <TAB> offers %v, not -%s", strings.Join(words, " "), got, f)
			}
		}
	}
	if got := complete(t, "gatewayd", "sim", "-log-level", "w"); strings.Join(got, " ") != "warn" {
		t.Errorf("gatewayd sim -log-level w<TAB> offers %v", got)
	}
}

// The zsh completion names every subcommand, and every flag in the branch of its subcommand.
// (Read, not run: zsh is rarely installed where the tests run.)
func TestZshCompletionListsEveryCommand(t *testing.T) {
	src, err := os.ReadFile("../../deploy/completion/_gatewayd")
	if err != nil {
		t.Fatal(err)
	}
	z := string(src)
	for _, sub := range subcommands(t) {
		if !strings.Contains(z, "'"+sub+":") {
			t.Errorf("_gatewayd has no command %s", sub)
		}
		branch := z
		if sub != "run" {
			m := regexp.MustCompile(`(?m)^\t(?:[a-z |]*\b)?` + regexp.QuoteMeta(sub) + `\b[a-z |]*\) (.*(?:\n\t\t.*)*)`).FindStringSubmatch(z)
			if m == nil {
				t.Errorf("_gatewayd has no case for %s", sub)
				continue
			}
			branch = m[1]
			if strings.Contains(branch, "$conf") {
				branch += " '-config["
			}
		} else {
			branch = "'-config[ '-version["
		}
		for _, f := range flagsOf(t, sub) {
			if !strings.Contains(branch, "'-"+f+"[") {
				t.Errorf("_gatewayd %s lacks -%s", sub, f)
			}
		}
	}
}

func has(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}
