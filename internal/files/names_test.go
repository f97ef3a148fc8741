package files_test

import (
	"mime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/tasker/tasker/internal/files"
)

func TestSafeNameStripsWhatIsNotAName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 200) + ".pdf" // 404 bytes
	cases := []struct{ in, want string }{
		{"report.pdf", "report.pdf"},
		{"../../etc/passwd", "passwd"},
		{`C:\Users\me\evil.exe`, "evil.exe"},
		{"a\x00b.txt", "ab.txt"},
		{"line\r\nbreak.txt", "linebreak.txt"},
		{"invoice\u202Etxt.exe", "invoicetxt.exe"},
		{"zero\u200Bwidth.png", "zerowidth.png"},
		{`quo"te<>:|?*.txt`, "quo_te______.txt"},
		{"..", "file"},
		{"...hidden", "hidden"},
		{"trailing. . ", "trailing"},
		{"CON", "_CON"},
		{"nul.txt", "_nul.txt"},
		{"com1.tar.gz", "_com1.tar.gz"},
		{"COM10.txt", "COM10.txt"},
		{"", "file"},
		{"\xff\xfe.txt", "_.txt"},
		{"tab\there.txt", "tabhere.txt"}, {"no\u00a0break.txt", "no break.txt"},
	}
	for _, c := range cases {
		if got := files.SafeName(c.in); got != c.want {
			t.Errorf("SafeName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	got := files.SafeName(long)
	if len(got) > files.MaxNameBytes || !strings.HasSuffix(got, ".pdf") || !utf8.ValidString(got) {
		t.Errorf("SafeName(404 bytes) = %q (%d bytes); want at most %d bytes, valid UTF-8, ending .pdf", got, len(got), files.MaxNameBytes)
	}
	if got := files.SafeName(strings.Repeat("a", 300)); len(got) != files.MaxNameBytes {
		t.Errorf("SafeName(300 a) has %d bytes, want %d", len(got), files.MaxNameBytes)
	}
}

func TestDisplayNameKeepsTheOriginalStorable(t *testing.T) {
	t.Parallel()
	if got := files.DisplayName("../a\x00b\xff.txt"); got != "../a\uFFFDb\uFFFD.txt" {
		t.Errorf("DisplayName = %q", got)
	}
	if got := files.DisplayName(strings.Repeat("ü", 1000)); len(got) > 1024 || !utf8.ValidString(got) {
		t.Errorf("DisplayName of 2000 bytes: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}

func TestContentDispositionRoundTrips(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"shot.png", "Straße 100%.pdf", "日本語.txt", "a b;c=d.txt", "it's.txt"} {
		v := files.ContentDisposition(name)
		if strings.ContainsAny(v, "\r\n\x00") {
			t.Fatalf("%q: header %q holds a control character", name, v)
		}
		typ, params, err := mime.ParseMediaType(v)
		if err != nil || typ != "attachment" || params["filename"] != name {
			t.Errorf("%q: %q parses to %s %v (%v); want attachment with the exact filename", name, v, typ, params, err)
		}
	}
}

func TestAllowedComparesMediaTypesOnly(t *testing.T) {
	t.Parallel()
	allow := []string{"text/plain", "image/png"}
	for ct, want := range map[string]bool{
		"text/plain; charset=utf-8": true, "image/png": true, "text/html; charset=utf-8": false,
		"application/octet-stream": false, "": false,
	} {
		if got := files.Allowed(ct, allow); got != want {
			t.Errorf("Allowed(%q) = %v, want %v", ct, got, want)
		}
	}
	if got := files.Sniff([]byte("<!DOCTYPE html><html><script>alert(1)</script>")); files.Allowed(got, files.DefaultAllowedTypes) {
		t.Errorf("HTML sniffed as %q passes the default list", got)
	}
	if got := files.Sniff([]byte("\x7fELF\x02\x01\x01\x00\x00\x00")); files.Allowed(got, files.DefaultAllowedTypes) {
		t.Errorf("an ELF executable sniffed as %q passes the default list", got)
	}
	if got := files.Sniff([]byte("MZ\x90\x00\x03\x00\x00\x00")); files.Allowed(got, files.DefaultAllowedTypes) {
		t.Errorf("a PE executable sniffed as %q passes the default list", got)
	}
}

func TestSignerBindsFileTenantAndExpiry(t *testing.T) {
	t.Parallel()
	s := files.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	tenant, other, file := uuid.New(), uuid.New(), uuid.New()
	now := time.Unix(1_800_000_000, 0)
	exp := now.Add(5 * time.Minute)
	sig := s.Sign(tenant, file, exp)
	if !s.Verify(tenant, file, exp.Unix(), sig, now) {
		t.Fatal("a fresh signature does not verify")
	}
	for name, ok := range map[string]bool{
		"other tenant": s.Verify(other, file, exp.Unix(), sig, now),
		"other file":   s.Verify(tenant, uuid.New(), exp.Unix(), sig, now),
		"later expiry": s.Verify(tenant, file, exp.Unix()+3600, sig, now),
		"expired":      s.Verify(tenant, file, exp.Unix(), sig, exp),
		"other key":    files.NewSigner([]byte("another key of thirty-two bytes!")).Verify(tenant, file, exp.Unix(), sig, now),
		"not base64":   s.Verify(tenant, file, exp.Unix(), "!!", now),
		"truncated":    s.Verify(tenant, file, exp.Unix(), sig[:20], now),
		"empty":        s.Verify(tenant, file, exp.Unix(), "", now),
	} {
		if ok {
			t.Errorf("%s: verified", name)
		}
	}
}

func TestStorageKeysCarryTheirTenant(t *testing.T) {
	t.Parallel()
	tenant, file := uuid.New(), uuid.New()
	key := files.StorageKey(tenant, file)
	gt, gf, ok := files.ParseStorageKey(key)
	if !ok || gt != tenant || gf != file || !strings.HasPrefix(key, files.TenantPrefix(tenant)) {
		t.Fatalf("key %q parses to %v %v %v", key, gt, gf, ok)
	}
	for _, bad := range []string{"", "t/", "t/x/y", "x/" + tenant.String() + "/" + file.String(), key + "/z", "t/" + tenant.String() + "/" + strings.ToUpper(file.String())} {
		if _, _, ok := files.ParseStorageKey(bad); ok {
			t.Errorf("ParseStorageKey(%q) accepted", bad)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{100: "100 B", 1024: "1 KiB", 100 << 20: "100 MiB", 1536 << 20: "1.5 GiB"} {
		if got := files.HumanBytes(n); got != want {
			t.Errorf("HumanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
