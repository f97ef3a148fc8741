package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tasker/tasker/internal/problem"
)

// PostgreSQL text holds neither NUL nor invalid UTF-8 (SQLSTATE 22021), and neither belongs in
// any field of this API, so they are refused here, once, before any handler runs, naming the
// field. The query boundary maps 22021 to 400 as the backstop.

// storable reports whether s can be stored as text.
func storable(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

const badText = "must be valid UTF-8 without NUL characters"

// queryProblems checks the raw query string: a malformed one (a bad percent escape, a semicolon
// separator) is refused rather than silently dropped, and so is a name or value that cannot be
// stored.
func queryProblems(raw string) []problem.FieldError {
	var out []problem.FieldError
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, nerr := url.QueryUnescape(rawName)
		value, verr := url.QueryUnescape(rawValue)
		field := name
		if nerr != nil {
			field = rawName
		}
		field = strings.ToValidUTF8(strings.ReplaceAll(field, "\x00", ""), "\uFFFD")
		switch {
		case strings.Contains(pair, ";"):
			out = append(out, problem.FieldError{In: "query", Field: field, Message: "the query string is malformed: separate parameters with &, and escape ; as %3B"})
		case nerr != nil || verr != nil:
			out = append(out, problem.FieldError{In: "query", Field: field, Message: "the query string is malformed: a percent escape is invalid"})
		case !storable(name) || !storable(value):
			out = append(out, problem.FieldError{In: "query", Field: field, Message: badText})
		}
	}
	return out
}

// bodyProblems checks a JSON body: it must hold exactly one JSON value, and every string in it,
// key or value, must be storable. A body that is not JSON at all is left to the schema
// validator, which says so.
func bodyProblems(body []byte) []problem.FieldError {
	if utf8.Valid(body) && !bytes.Contains(body, []byte(`\u0000`)) {
		// Valid JSON can hold a NUL only as that escape: no text problem is possible, and only
		// what follows the value is left to check.
		return trailingProblems(body)
	}
	bad := -1 // offset of the first invalid UTF-8 byte
	if !utf8.Valid(body) {
		for i := 0; i < len(body); {
			r, size := utf8.DecodeRune(body[i:])
			if r == utf8.RuneError && size == 1 {
				bad = i
				break
			}
			i += size
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var (
		out   []problem.FieldError
		stack []frame
		read  int64 // offset after the previous token
	)
	check := func(s string, field string, start, end int64) {
		if strings.IndexByte(s, 0) >= 0 || (bad >= 0 && int64(bad) >= start && int64(bad) < end) {
			out = append(out, problem.FieldError{In: "body", Field: field, Message: badText})
		}
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			return out // not JSON: the schema validator reports it
		}
		end := dec.InputOffset()
		top := len(stack) - 1
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if top >= 0 {
					stack[top].begin()
				}
				stack = append(stack, frame{object: t == '{', index: -1, wantKey: t == '{'})
			default:
				stack = stack[:top]
				if top > 0 {
					stack[top-1].end()
				}
			}
		case string:
			if top >= 0 && stack[top].object && stack[top].wantKey {
				stack[top].key, stack[top].wantKey = t, false
				check(t, fieldPath(stack), read, end)
				break
			}
			if top >= 0 {
				stack[top].begin()
			}
			check(t, fieldPath(stack), read, end)
			if top >= 0 {
				stack[top].end()
			}
		default:
			if top >= 0 {
				stack[top].begin()
				stack[top].end()
			}
		}
		read = end
		if len(stack) == 0 {
			// One complete value: anything after it but white space is refused.
			if _, err := dec.Token(); !errors.Is(err, io.EOF) {
				out = append(out, problem.FieldError{In: "body", Field: "body", Message: "must hold one JSON value and nothing after it"})
			}
			return out
		}
	}
}

// trailingProblems refuses anything but white space after the body's one JSON value.
func trailingProblems(body []byte) []problem.FieldError {
	dec := json.NewDecoder(bytes.NewReader(body))
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		return nil // not JSON: the schema validator reports it
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return []problem.FieldError{{In: "body", Field: "body", Message: "must hold one JSON value and nothing after it"}}
	}
	return nil
}

// frame is one open object or array while walking a body's tokens.
type frame struct {
	object  bool
	wantKey bool
	key     string
	index   int
}

func (f *frame) begin() {
	if !f.object {
		f.index++
	}
}

func (f *frame) end() {
	if f.object {
		f.wantKey = true
	}
}

// fieldPath names the current position the way validation problems name body fields:
// property names and array indexes joined with dots ("labels.2").
func fieldPath(stack []frame) string {
	parts := make([]string, 0, len(stack))
	for _, f := range stack {
		if f.object {
			parts = append(parts, strings.ToValidUTF8(strings.ReplaceAll(f.key, "\x00", ""), "\uFFFD"))
		} else if f.index >= 0 {
			parts = append(parts, strconv.Itoa(f.index))
		}
	}
	if len(parts) == 0 {
		return "body"
	}
	return strings.Join(parts, ".")
}
