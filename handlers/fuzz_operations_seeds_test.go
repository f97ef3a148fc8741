package handlers_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// fuzzSeed is one corpus entry of FuzzOperations.
type fuzzSeed struct {
	op     uint
	path   string
	query  string
	header string
	body   []byte
	valid  bool // the operation's valid request as the owner
}

// fuzzSeeds builds the seed corpus from the spec: for every operation a valid request as every
// kind of caller, then variants of each body field, query parameter, header and path parameter,
// the other parts kept valid so that each variant reaches as deep as it can.
func fuzzSeeds(ops []fuzzOp, cursors map[string][]string) []fuzzSeed {
	var seeds []fuzzSeed
	n := uint(len(ops))
	for i, op := range ops {
		idx := uint(i)
		var valid []byte
		if op.body != nil {
			valid = fuzzJSON(fuzzExample(op.id, "", op.body, true))
		}
		for k, caller := range fuzzCallers {
			if k == 0 || caller != "owner" {
				seeds = append(seeds, fuzzSeed{op: idx + uint(k)*n, query: fuzzValidQuery(op, cursors[op.id]), body: valid, valid: k == 0})
			}
		}
		for _, b := range fuzzBodyVariants(op) {
			seeds = append(seeds, fuzzSeed{op: idx, body: b})
		}
		for _, q := range fuzzQueryVariants(op, cursors[op.id]) {
			seeds = append(seeds, fuzzSeed{op: idx, query: q, body: valid})
		}
		for _, h := range fuzzHeaderVariants(op) {
			seeds = append(seeds, fuzzSeed{op: idx, header: h, body: valid})
		}
		for _, p := range fuzzPathVariants(op) {
			seeds = append(seeds, fuzzSeed{op: idx, path: p, body: valid})
		}
	}
	return seeds
}

// fuzzRunSeeds caps the seeds a fuzz run (go test -fuzz) starts from. Before it mutates
// anything, the engine runs the seeds one at a time to measure their coverage, at about 25 ms a
// seed on 2 cores, so the whole corpus would use up CI's bounded run before any fuzzing began.
// go test without -fuzz (make test) runs every seed.
const fuzzRunSeeds = 400

// fuzzing reports whether this is a fuzz run rather than a run of the seeds as tests.
func fuzzing() bool {
	fl := flag.Lookup("test.fuzz")
	return fl != nil && fl.Value.String() != ""
}

// fuzzSample keeps every operation's valid request and an even spread of the other seeds, at
// most limit in all.
func fuzzSample(seeds []fuzzSeed, limit int) []fuzzSeed {
	var out, rest []fuzzSeed
	for _, s := range seeds {
		if s.valid {
			out = append(out, s)
		} else {
			rest = append(rest, s)
		}
	}
	if room := limit - len(out); room > 0 && len(rest) > 0 {
		step := float64(len(rest)) / float64(min(room, len(rest)))
		for i := 0.0; int(i) < len(rest); i += step {
			out = append(out, rest[int(i)])
		}
	}
	return out
}

// fuzzField is the value a body field takes in valid requests where a type-appropriate value
// alone would not do: ids of the workspace, fresh keys, emails and slugs, throwaway tokens.
func fuzzField(op, name string) (string, bool) {
	switch name {
	case "team_id":
		return "{team}", true
	case "assignee_id":
		return "{member}", true
	case "parent_id":
		return "{task2}", true
	case "refresh_token":
		return "{refresh}", true
	case "token":
		return "{invite}", true
	case "key":
		return "{newkey}", true
	case "tenant_slug":
		if op == "login" {
			return "{slug}", true
		}
		return "{newslug}", true
	case "email":
		if op == "login" {
			return "{email}", true
		}
		return "{newemail}", true
	case "password":
		if op == "login" {
			return "{password}", true
		}
		return "correct horse battery", true
	}
	return "", false
}

// fuzzExample is a valid value for schema s. With all, an object has every property; without,
// only the required ones (or all of them when none is required, for minProperties).
func fuzzExample(op, name string, s *openapi3.Schema, all bool) any {
	if v, ok := fuzzField(op, name); ok {
		return v
	}
	switch {
	case len(s.Enum) > 0:
		return s.Enum[0]
	case s.Type.Is(openapi3.TypeString):
		switch s.Format {
		case "uuid":
			return "{member}"
		case "date":
			return "2030-01-02"
		case "date-time":
			return "2030-01-02T03:04:05Z"
		case "email":
			return "{newemail}"
		}
		v := "fuzz value"
		for uint64(len(v)) < s.MinLength {
			v += v
		}
		if s.MaxLength != nil && uint64(len(v)) > *s.MaxLength {
			v = v[:*s.MaxLength]
		}
		return v
	case s.Type.Is(openapi3.TypeInteger):
		switch {
		case s.Min != nil:
			return int64(*s.Min)
		case s.Max != nil && *s.Max < 1:
			return int64(*s.Max)
		}
		return 1
	case s.Type.Is(openapi3.TypeNumber):
		return 1.5
	case s.Type.Is(openapi3.TypeBoolean):
		return true
	case s.Type.Is(openapi3.TypeArray):
		return []any{fuzzExample(op, "", s.Items.Value, all)}
	case s.Type.Is(openapi3.TypeObject):
		obj := map[string]any{}
		for prop, ref := range s.Properties {
			if all || len(s.Required) == 0 || slices.Contains(s.Required, prop) {
				obj[prop] = fuzzExample(op, prop, ref.Value, all)
			}
		}
		return obj
	}
	return nil
}

func fuzzJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// fuzzQuote is the JSON text of s (json.Marshal's, without its HTML escaping).
func fuzzQuote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

const fuzzMarker = "@@fuzz@@"

// fuzzWith is obj's JSON with field name's value replaced by the raw JSON text frag, which may
// be anything, even invalid UTF-8 or a lone surrogate escape.
func fuzzWith(obj map[string]any, name, frag string) []byte {
	o := maps.Clone(obj)
	o[name] = fuzzMarker
	return bytes.Replace(fuzzJSON(o), []byte(fuzzQuote(fuzzMarker)), []byte(frag), 1)
}

// fuzzBodyVariants are bodies that break or stretch the operation's schema, as a whole and one
// field at a time.
func fuzzBodyVariants(op fuzzOp) [][]byte {
	if op.body == nil {
		return [][]byte{[]byte(`{}`), []byte(`{"x":1}`), []byte("\x00")}
	}
	full := fuzzExample(op.id, "", op.body, true).(map[string]any)
	valid := fuzzJSON(full)
	required := fuzzExample(op.id, "", op.body, false).(map[string]any)
	var out [][]byte
	if req := fuzzJSON(required); !bytes.Equal(req, valid) {
		out = append(out, req)
	}
	names := slices.Sorted(maps.Keys(full))
	for _, b := range []string{
		"", "{", "{}", "null", "[]", "\x00", "\xff",
		string(valid) + "x", string(valid) + "{}", "\xef\xbb\xbf" + string(valid),
		`{"unknown":1,` + string(valid[1:]),
		`{"` + names[0] + `":null,` + string(valid[1:]),
		`{"` + names[0] + `":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
		strings.ReplaceAll(string(valid), `"`, `'`),
	} {
		out = append(out, []byte(b))
	}
	// One field at a time, in the smallest body that has it (the required fields and that one),
	// so that each variant is judged on its own.
	if len(op.body.Required) == 0 {
		required = map[string]any{}
	}
	for _, name := range names {
		without := maps.Clone(full)
		delete(without, name)
		out = append(out, fuzzJSON(without))
		for _, frag := range fuzzValueVariants(op.id, name, op.body.Properties[name].Value) {
			out = append(out, fuzzWith(required, name, frag))
		}
	}
	return out
}

// fuzzValueVariants are JSON texts for a field of schema s: wrong types, NUL, invalid UTF-8, a
// lone surrogate, strings at and past the limits, odd numbers and dates, ids of other kinds, the
// enum's other values.
func fuzzValueVariants(op, name string, s *openapi3.Schema) []string {
	v := []string{"null", "{}"}
	if s.Type.Is(openapi3.TypeString) {
		v = append(v, "12345")
	} else {
		v = append(v, `"1"`)
	}
	switch {
	case s.Type.Is(openapi3.TypeString):
		v = append(v, `"a\u0000b"`, "\"a\xffb\"", `"\ud800"`, `""`, `" "`, `"\u200b"`)
		long := 1000
		if s.MaxLength != nil {
			long = max(long, int(*s.MaxLength)+1)
			// At the limit in characters, but four times as many bytes.
			v = append(v, fuzzQuote(strings.Repeat("😀", int(*s.MaxLength))))
		}
		v = append(v, fuzzQuote(strings.Repeat("a", long)))
		for _, e := range s.Enum[min(1, len(s.Enum)):] {
			v = append(v, fuzzQuote(fmt.Sprint(e)))
		}
		if len(s.Enum) > 0 {
			v = append(v, fuzzQuote(strings.ToUpper(fmt.Sprint(s.Enum[0]))))
		}
		switch s.Format {
		case "uuid":
			v = append(v, `"00000000-0000-0000-0000-000000000000"`, `"{owner}"`, `"{project}"`, `"{task}"`, `"00000000000000000000000000000000"`)
		case "date":
			v = append(v, `"2030-02-30"`, `"0000-01-01"`, `"9999-12-31"`, `"2030-01-02T00:00:00Z"`)
		case "date-time":
			v = append(v, `"0001-01-01T00:00:00Z"`, `"9999-12-31T23:59:59.999999999Z"`, `"2030-01-02T03:04:05+14:00"`, `"2030-01-02T24:00:00Z"`, `"2030-01-02"`,
				`"9999-12-31T23:59:59-23:59"`, `"0001-01-01T00:00:00+23:59"`) // UTC years 10000 and 0
		case "email":
			v = append(v, `"a@b"`, `"\"a b\"@example.test"`, `"a\u0000@example.test"`, fuzzQuote("a@"+strings.Repeat("b", 250)+".test"))
		}
		switch name {
		case "key":
			v = append(v, `"ENG"`, `"PLAT"`, `"A"`, `"ABCDEFGHIJK"`, `"eng"`, `"A1"`)
		case "tenant_slug":
			v = append(v, `"{slug}"`, `"ab"`, `"-ab-"`, fuzzQuote(strings.Repeat("a", 40)))
		case "email":
			v = append(v, `"{email}"`, `"OWNER@EXAMPLE.TEST"`)
		case "password":
			v = append(v, `"short"`, fuzzQuote(strings.Repeat("é", 256)))
		case "refresh_token", "token":
			v = append(v, `"tkr_"`, `"tkr_00000000-0000-0000-0000-000000000000_00000000-0000-0000-0000-000000000000_x"`, `"{refresh}x"`)
		}
	case s.Type.Is(openapi3.TypeInteger):
		v = append(v, "-1", "1.5", "4.0", "9223372036854775808", "1e400")
		if s.Max != nil {
			v = append(v, strconv.FormatFloat(*s.Max+1, 'f', -1, 64))
		}
	case s.Type.Is(openapi3.TypeNumber):
		v = append(v, "-0", "1e308", "1.7976931348623157e308", "-1.7976931348623157e308", "5e-324", "1e400", "123456789012345678901234567890")
	case s.Type.Is(openapi3.TypeBoolean):
		v = append(v, "1", `"true"`)
	case s.Type.Is(openapi3.TypeArray):
		v = append(v, `"x"`, `[null]`, `[""]`, `[" a"]`, `["a,b"]`, `["a","a"]`, `["a\u0000"]`, "[\"\xff\"]")
		if s.MaxItems != nil {
			many := make([]string, *s.MaxItems+1)
			for i := range many {
				many[i] = fuzzQuote(fmt.Sprintf("l%d", i))
			}
			v = append(v, "["+strings.Join(many, ",")+"]")
			if it := s.Items.Value; it.MaxLength != nil {
				for i := range many {
					many[i] = fuzzQuote(strconv.Itoa(i) + strings.Repeat("😀", int(*it.MaxLength)-len(strconv.Itoa(i))))
				}
				v = append(v, "["+strings.Join(many[1:], ",")+"]")
			}
		}
	}
	return v
}

// fuzzParamValue is a valid value for query parameter p, percent-encoded; cursor is a real
// cursor of the list.
func fuzzParamValue(p *openapi3.Parameter, cursor string) string {
	switch p.Name {
	case "limit":
		return "1"
	case "cursor":
		return url.QueryEscape(cursor)
	case "team_id":
		return "{team}"
	case "assignee":
		return "me"
	case "label":
		return "bug"
	case "parent_id", "resource_id":
		return "{task}"
	case "q":
		return "first"
	case "action":
		return "task.create"
	case "resource_type":
		return "task"
	}
	s := p.Schema.Value
	if s.Type.Is(openapi3.TypeArray) {
		s = s.Items.Value
	}
	switch {
	case len(s.Enum) > 0:
		return fmt.Sprint(s.Enum[0])
	case s.Type.Is(openapi3.TypeBoolean):
		return "true"
	case s.Type.Is(openapi3.TypeInteger):
		return "1"
	case s.Format == "uuid":
		return "{member}"
	case s.Format == "date":
		return "2030-01-02"
	}
	return "fuzz"
}

// fuzzValidQuery sets every query parameter of the operation to a valid value at once.
func fuzzValidQuery(op fuzzOp, cursors []string) string {
	var q []string
	for _, p := range op.query {
		if p.Name == "cursor" && len(cursors) == 0 {
			continue
		}
		q = append(q, p.Name+"="+fuzzParamValue(p, fuzzFirst(cursors)))
	}
	return strings.Join(q, "&")
}

func fuzzFirst(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// fuzzQueryVariants are query strings that break or stretch one parameter at a time: NUL,
// invalid UTF-8 and invalid percent-encoding, semicolons, repeated and bare keys, wrong types,
// limits, odd dates, search syntax, forged cursors.
func fuzzQueryVariants(op fuzzOp, cursors []string) []string {
	if len(op.query) == 0 {
		return []string{"x=1", "%zz", "%00=%ff", "a;b", "&&==;;"}
	}
	var out []string
	for _, p := range op.query {
		name, s := p.Name, p.Schema.Value
		valid := fuzzParamValue(p, fuzzFirst(cursors))
		vals := []string{"", "%00", "%ff", "%zz", valid + "%00", strings.Repeat("a", 1000)}
		items := s
		if s.Type.Is(openapi3.TypeArray) {
			items = s.Items.Value
		}
		for _, e := range items.Enum[min(1, len(items.Enum)):] {
			vals = append(vals, fmt.Sprint(e))
		}
		switch {
		case items.Type.Is(openapi3.TypeInteger):
			vals = append(vals, "0", "-1", "201", "1.5", "+1", "99999999999999999999")
		case items.Type.Is(openapi3.TypeBoolean):
			vals = append(vals, "TRUE", "1", "yes")
		case items.Format == "uuid":
			vals = append(vals, "{owner}", "{project}", "00000000-0000-0000-0000-000000000000", "{00000000-0000-0000-0000-000000000000}")
		case items.Format == "date":
			vals = append(vals, "2030-02-30", "0000-01-01", "9999-12-31", "2030-01-02T00:00:00Z")
		}
		switch name {
		case "cursor":
			for _, c := range cursors[min(1, len(cursors)):] {
				vals = append(vals, url.QueryEscape(c))
			}
			for _, c := range cursors {
				vals = append(vals, fuzzCursorVariants(c)...)
			}
		case "assignee":
			vals = append(vals, "none", "{member}", "ME")
		case "label":
			vals = append(vals, "a%20b", "a,b", strings.Repeat("%F0%9F%98%80", 50))
		case "q":
			vals = append(vals, "%26", "!", "a+%26+b", "a:*", "'", "%22unterminated", "or", "-first", "()", "a+%3C-%3E+b", "%5C",
				strings.Repeat("%F0%9F%98%80", 200), strings.Repeat("a+", 100))
		case "action", "resource_type":
			vals = append(vals, "%25", "_", "'")
		}
		for _, v := range vals {
			out = append(out, name+"="+v)
		}
		other := "x"
		if len(items.Enum) > 1 {
			other = fmt.Sprint(items.Enum[1])
		}
		out = append(out, name, name+"="+valid+"&"+name+"="+other, name+"="+valid+";"+name+"="+other,
			strings.Repeat(name+"="+valid+"&", 6)+"x=1", name+"="+valid+","+other, "%"+hex.EncodeToString([]byte(name[:1]))+name[1:]+"="+valid)
	}
	// A cursor of one sort order with another.
	for _, p := range op.query {
		if p.Name == "sort" && len(cursors) == len(p.Schema.Value.Enum) {
			for i, e := range p.Schema.Value.Enum {
				out = append(out, fmt.Sprintf("sort=%v&cursor=%s", e, url.QueryEscape(cursors[(i+1)%len(cursors)])))
			}
		}
	}
	return out
}

// fuzzCursorVariants forge cursors from a real one: each of its fields replaced by a value of the
// wrong type or out of range, and encodings that are not ours.
func fuzzCursorVariants(c string) []string {
	enc := func(s string) string { return url.QueryEscape(base64.RawURLEncoding.EncodeToString([]byte(s))) }
	out := []string{enc("{}"), enc("null"), enc("\x00"), "not-base64!", url.QueryEscape(c + "="), c[:len(c)/2], strings.Repeat("A", 512)}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	var fields map[string]any
	if err != nil || json.Unmarshal(raw, &fields) != nil {
		return out
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		for _, frag := range []string{"null", `"x"`, "-1", "1e400", "9223372036854775808", `"0001-01-01T00:00:00Z"`, `"\u0000"`, "\"\xff\""} {
			out = append(out, enc(string(fuzzWith(fields, k, frag))))
		}
	}
	return out
}

// fuzzHeaderVariants are Idempotency-Key and If-Match values.
func fuzzHeaderVariants(op fuzzOp) []string {
	var out []string
	for _, h := range op.headers {
		switch h {
		case "Idempotency-Key":
			out = append(out, "fuzz-key", " ", "\xff", strings.Repeat("k", 256))
		case "If-Match":
			out = append(out, `"1"`, `W/"1"`, "*", `"-1"`, `"1", "2"`, `"99999999999999999999"`, "\xff")
		}
	}
	return out
}

// fuzzPathVariants are odd values for each path parameter in turn, the others kept.
func fuzzPathVariants(op fuzzOp) []string {
	var out []string
	for i, name := range op.params {
		odd := []string{"x", "\x00", "\xff", "%zz", "..", "00000000-0000-0000-0000-000000000000",
			"FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", "{00000000-0000-0000-0000-000000000000}", strings.Repeat("a", 1000)}
		if strings.HasPrefix(op.path, "/v1/tasks/") && name == "id" {
			odd = append(odd, "PLAT-1", "DOCS-1", "ZZ-1", "PLAT-0", "PLAT-01", "plat-1", "PLAT-999999999999999999", "PLAT-9999999999999999999", "PLAT-1\x00")
		}
		for _, v := range odd {
			parts := make([]string, len(op.params))
			parts[i] = v
			out = append(out, strings.Join(parts, "/"))
		}
	}
	return out
}
