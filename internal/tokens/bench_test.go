package tokens

import (
	"testing"
	"time"
)

func BenchmarkVerifyAccessToken(b *testing.B) {
	is := newIssuer(b)
	is.now = time.Now
	tok, err := is.Issue(subject())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := is.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIssueAccessToken(b *testing.B) {
	is := newIssuer(b)
	s := subject()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := is.Issue(s); err != nil {
			b.Fatal(err)
		}
	}
}
