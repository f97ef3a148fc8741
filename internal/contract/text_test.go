package contract

import (
	"slices"
	"testing"
)

func TestBodyProblemsNameEachBadString(t *testing.T) {
	t.Parallel()
	cases := []struct {
		body string
		want []string
	}{
		{`{"a":"ok","b":[1,"x"],"c":{"d":null}}`, nil},
		{`{"a":"x\u0000"}`, []string{"a"}},
		{"{\"a\":{\"b\":[\"ok\",\"\xff\"]}}", []string{"a.b.1"}},
		{`{"a":[{"b":1},{"c":"\u0000"}]}`, []string{"a.1.c"}},
		{`{"k\u0000":1,"z":"fine"}`, []string{"k"}},
		{`"\u0000"`, []string{"body"}},
		{`{"a":1} {"b":2}`, []string{"body"}},
		{`{"a":1} x`, []string{"body"}},
		{"{\"a\":1}\n ", nil},
		{`{"a":`, nil}, // not JSON: left to the schema validator
	}
	for _, tc := range cases {
		var got []string
		for _, f := range bodyProblems([]byte(tc.body)) {
			got = append(got, f.Field)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("bodyProblems(%q) = %v, want %v", tc.body, got, tc.want)
		}
	}
}

func TestQueryProblemsRefuseWhatParseQueryDrops(t *testing.T) {
	t.Parallel()
	cases := []struct {
		raw  string
		want []string
	}{
		{"limit=5&status=todo&status=done", nil},
		{"q=caf%C3%A9", nil},
		{"limit=%zz", []string{"limit"}},
		{"sort=position;drop", []string{"sort"}},
		{"q=%00", []string{"q"}},
		{"label=%FF&limit=1", []string{"label"}},
	}
	for _, tc := range cases {
		var got []string
		for _, f := range queryProblems(tc.raw) {
			got = append(got, f.Field)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("queryProblems(%q) = %v, want %v", tc.raw, got, tc.want)
		}
	}
}
