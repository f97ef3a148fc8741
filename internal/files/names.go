// Package files holds the rules of stored files that are not HTTP glue: safe filenames and the
// headers that carry them, content sniffing against an allow list, storage keys, signed download
// URLs, and the sweep that removes blobs no metadata points at.
package files

import (
	"mime"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameBytes bounds a safe filename: what most filesystems and S3 tools accept.
const MaxNameBytes = 255

// maxOriginalBytes bounds the client's filename kept for display.
const maxOriginalBytes = 1024

// SafeName turns a client's filename into one that is safe in a path, a header and a terminal:
// only its last path element, without control, format (bidirectional overrides, zero-width) or
// Windows-forbidden characters, without leading dots or trailing dots and spaces, not a reserved
// device name, and at most MaxNameBytes bytes with its extension kept. An empty result is "file".
func SafeName(name string) string {
	name = strings.ToValidUTF8(name, "_")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case unicode.Is(unicode.Cc, r), unicode.Is(unicode.Cf, r), unicode.Is(unicode.Co, r),
			r == utf8.RuneError, unicode.Is(unicode.Zl, r), unicode.Is(unicode.Zp, r):
			// Dropped: NUL and other controls, RTL overrides, private use, line separators.
		case strings.ContainsRune(`<>:"|?*`, r):
			b.WriteByte('_')
		case unicode.IsSpace(r):
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	s := strings.TrimRight(strings.TrimLeft(b.String(), ". "), ". ")
	if reservedDevice(s) {
		s = "_" + s
	}
	s = truncateName(s, MaxNameBytes)
	if s == "" {
		return "file"
	}
	return s
}

// reservedDevice reports whether Windows would open a device rather than a file by this name
// (CON, NUL.txt, com1.tar.gz ...), whatever the extension.
func reservedDevice(name string) bool {
	stem, _, _ := strings.Cut(strings.ToUpper(name), ".")
	stem = strings.TrimRight(stem, " ")
	switch stem {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if len(stem) == 4 && (strings.HasPrefix(stem, "COM") || strings.HasPrefix(stem, "LPT")) {
		return stem[3] >= '0' && stem[3] <= '9'
	}
	return false
}

// truncateName cuts s to at most max bytes on a character boundary, keeping a short extension.
func truncateName(s string, max int) string {
	if len(s) <= max {
		return s
	}
	ext := ""
	if i := strings.LastIndexByte(s, '.'); i > 0 && len(s)-i <= 16 {
		ext = s[i:]
		s = s[:i]
	}
	return strings.TrimRight(cutUTF8(s, max-len(ext)), ". ") + ext
}

// cutUTF8 is the longest prefix of s of at most n bytes that ends on a character boundary.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// DisplayName is the client's filename as stored for display: valid UTF-8 without NUL (which
// PostgreSQL text cannot hold), at most 1 KiB. It is never used in a path or a header.
func DisplayName(name string) string {
	name = strings.ToValidUTF8(name, "\uFFFD")
	name = strings.ReplaceAll(name, "\x00", "\uFFFD")
	return cutUTF8(name, maxOriginalBytes)
}

// ContentDisposition is the header value that makes browsers download rather than show a file
// named name (a SafeName): an ASCII fallback for old clients and the exact name as RFC 8187
// filename*, per RFC 6266.
func ContentDisposition(name string) string {
	var ascii strings.Builder
	for _, r := range name {
		if r < 0x20 || r >= 0x7f || r == '"' || r == '\\' || r == '%' {
			ascii.WriteByte('_')
			continue
		}
		ascii.WriteRune(r)
	}
	return `attachment; filename="` + ascii.String() + `"; filename*=UTF-8''` + encodeRFC8187(name)
}

// encodeRFC8187 percent-encodes every byte that is not an attr-char.
func encodeRFC8187(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// SniffLen is how many leading bytes Sniff looks at.
const SniffLen = 512

// Sniff names the content type of a file from its first bytes (up to SniffLen), by the WHATWG
// algorithm net/http implements; unknown binary data is application/octet-stream.
func Sniff(head []byte) string { return http.DetectContentType(head) }

// DefaultAllowedTypes are the media types accepted when FILE_ALLOWED_TYPES is not set: images,
// PDF, plain text, archives (office documents are ZIP), and common audio and video. HTML, SVG,
// XML, scripts and executables (sniffed as application/octet-stream) are not among them.
var DefaultAllowedTypes = []string{
	"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp",
	"application/pdf", "text/plain", "application/zip", "application/x-gzip",
	"audio/mpeg", "audio/wave", "audio/ogg", "video/mp4", "video/webm", "video/ogg",
}

// Allowed reports whether the sniffed type ct is on the allow list, comparing media types
// without their parameters (text/plain; charset=utf-8 is text/plain).
func Allowed(ct string, allow []string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	for _, a := range allow {
		if strings.EqualFold(mt, a) {
			return true
		}
	}
	return false
}
