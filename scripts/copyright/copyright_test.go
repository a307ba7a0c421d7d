package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const committed = "../../deploy/debian/copyright"

// The committed copyright file is exactly what the modules the package's build compiles in give:
// a new, removed or upgraded dependency fails here until the file is regenerated
// (go run ./scripts/copyright -o deploy/debian/copyright), and every module's licence is one
// classify knows.
func TestCommittedCopyrightIsCurrent(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go not in PATH: cannot list the modules")
	}
	mods, err := fromGoList()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Generate(mods)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("%s is not current; regenerate it with go run ./scripts/copyright -o deploy/debian/copyright:\n%s",
			committed, Diff(string(want), string(got)))
	}
	// Every module go list names has its own paragraph (and the standard library one).
	for _, m := range mods {
		want := "Files: vendor/" + m.Path + "/*\nComment: Go module " + m.Path + " " + m.Version + ".\n"
		if m.Path == "std" {
			want = "Files: goroot/src/*\n"
		}
		if !strings.Contains(string(got), want) {
			t.Errorf("no paragraph for %s %s", m.Path, m.Version)
		}
	}
}

// A module missing from the list, or at another version, gives another file: the check cannot
// pass with a dependency left out.
func TestGenerateChangesWithTheModules(t *testing.T) {
	mods, err := fromGoList()
	if err != nil {
		t.Fatal(err)
	}
	all, err := Generate(append([]Module(nil), mods...))
	if err != nil {
		t.Fatal(err)
	}
	var fewer []Module
	dropped := ""
	for _, m := range mods {
		if dropped == "" && m.Path != "std" {
			dropped = m.Path
			continue
		}
		fewer = append(fewer, m)
	}
	less, err := Generate(fewer)
	if err != nil {
		t.Fatal(err)
	}
	if string(less) == string(all) {
		t.Fatalf("leaving out %s changed nothing", dropped)
	}
	if d := Diff(string(all), string(less)); !strings.Contains(d, "- Files: vendor/"+dropped+"/*") {
		t.Errorf("the difference does not name %s:\n%s", dropped, d)
	}
	bumped := append([]Module(nil), mods...)
	for i := range bumped {
		if bumped[i].Path != "std" {
			bumped[i].Version += "-next"
			break
		}
	}
	if b, err := Generate(bumped); err != nil || string(b) == string(all) {
		t.Errorf("a changed version gave the same file (err %v)", err)
	}
}

func TestClassify(t *testing.T) {
	apache, err := os.ReadFile("../../LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Skip("go env GOROOT:", err)
	}
	bsd, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(goroot)), "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ text, want string }{
		{string(apache), "Apache-2.0"},
		{string(bsd), "BSD-3-clause"},
		{"Copyright (c) 2020 A\n\nPermission is hereby granted, free of charge, to any person obtaining a copy\nof this software", "Expat"},
		{"Redistribution and use in source and binary forms, with or without\nmodification, are permitted provided that:\n\n" +
			"  Redistributions in binary form must reproduce the above copyright notice", "BSD-2-clause"},
	} {
		got, err := classify(c.text)
		if err != nil || got != c.want {
			t.Errorf("classify(%.40q) = %q, %v; want %q", c.text, got, err, c.want)
		}
	}
	if got, err := classify("All rights reserved. You may not copy this."); err == nil {
		t.Errorf("an unknown licence was classified as %q", got)
	}
	// The Apache text's own template line is no holder.
	if h := copyrights(string(apache)); len(h) != 0 {
		t.Errorf("copyrights(Apache-2.0 text) = %q, want none", h)
	}
	if h := copyrights("Copyright (c) Yasuhiro MATSUMOTO <m@example.org>\ncopyright notice and this\nCopyright 2014-2015 The Prometheus Authors"); len(h) != 2 ||
		h[0] != "Yasuhiro MATSUMOTO <m@example.org>" || h[1] != "2014-2015 The Prometheus Authors" {
		t.Errorf("copyrights = %q", h)
	}
}

// The LICENSE at the root is the Apache License 2.0 as Debian ships it (the same text, without
// Debian's leading blank line), when this machine has Debian's copy to compare with.
func TestLicenseIsApache2(t *testing.T) {
	deb, err := os.ReadFile("/usr/share/common-licenses/Apache-2.0")
	if err != nil {
		t.Skip("no /usr/share/common-licenses/Apache-2.0 to compare with (not Debian)")
	}
	ours, err := os.ReadFile("../../LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(deb)) != strings.TrimSpace(string(ours)) {
		t.Fatal("LICENSE differs from /usr/share/common-licenses/Apache-2.0")
	}
}
