// Package docs checks the repository's Markdown: every relative link in a *.md file resolves to a
// file or directory of the repository (and, for a link into a Markdown file, to one of its
// headings), and the README's Layout table names every Go package and nothing that is not there.
// The package has no non-test code.
package docs
