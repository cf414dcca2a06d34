package jsondup

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, doc string
		want      []Dup
	}{
		{"none", `{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]}`, nil},
		{"top level", "{\"a\":1,\n  \"a\":2}", []Dup{{Key: "a", Offset: 10, Line: 2, Column: 3}}},
		{"in a nested object", `{"psa":{"system":"x","system":"y"}}`,
			[]Dup{{Path: []Step{{Key: "psa"}}, Key: "system", Offset: 21, Line: 1, Column: 22}}},
		{"in an array element", `{"m":[{},{"id":1,"id":1}]}`,
			[]Dup{{Path: []Step{{Key: "m"}, {Array: true, Index: 1}}, Key: "id", Offset: 17, Line: 1, Column: 18}}},
		{"three times, in order", `[{"a":1,"a":2,"a":3}]`, []Dup{
			{Path: []Step{{Array: true}}, Key: "a", Offset: 8, Line: 1, Column: 9},
			{Path: []Step{{Array: true}}, Key: "a", Offset: 14, Line: 1, Column: 15},
		}},
		{"key text in values", `{"a":"\"a\":","b":["a","a"],"c":{"a":1}}`, nil},
		{"scalar", `42`, nil},
		{"syntax error stops", `{"a":1,"a":2,`, []Dup{{Key: "a", Offset: 7, Line: 1, Column: 8}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, Find([]byte(tc.doc))); diff != "" {
				t.Errorf("Find(%s) mismatch (-want +got):\n%s", tc.doc, diff)
			}
		})
	}
}
