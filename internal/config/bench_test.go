package config

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

func BenchmarkParseExample(b *testing.B) {
	src, err := os.ReadFile(exampleFile)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := noEnv.Parse(src, name); err != nil {
			b.Fatal(err)
		}
	}
}

// A file of nothing but unknown keys: every one is located and reported.
func BenchmarkParseManyProblems(b *testing.B) {
	var s strings.Builder
	s.WriteString(minimal)
	for i := range 2000 {
		fmt.Fprintf(&s, "k%d = %d\n", i, i)
	}
	src := []byte(s.String())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := noEnv.Parse(src, name); err == nil {
			b.Fatal("accepted")
		}
	}
}
