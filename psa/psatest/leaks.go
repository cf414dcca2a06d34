package psatest

import (
	"encoding/json"
	"fmt"
	"html"
	"net/url"
	"reflect"
	"strings"
)

// Leaks reports where v shows one of secrets, as is, URL-, JSON- or
// HTML-escaped: printed with %v, %+v or %#v, or in any string that v
// holds, however deep (behind pointers, in maps, slices, interfaces and
// unexported fields), as a deep printer such as a test's failure message
// or a debugger shows it. It returns nil when v shows none. Functions and
// channels are not looked into.
func Leaks(v any, secrets ...string) []string {
	var needles []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		j, _ := json.Marshal(s)
		needles = append(needles, s, url.QueryEscape(s), html.EscapeString(s), string(j[1:len(j)-1]))
	}
	var found []string
	look := func(where, text string) {
		for _, n := range needles {
			if strings.Contains(text, n) {
				found = append(found, fmt.Sprintf("%s shows %q", where, n))
				return
			}
		}
	}
	for _, verb := range []string{"%v", "%+v", "%#v"} {
		look(verb, fmt.Sprintf(verb, v))
	}
	w := walker{seen: map[uintptr]bool{}, look: look}
	w.walk("value", reflect.ValueOf(v))
	return found
}

// walker visits every string a value holds.
type walker struct {
	seen map[uintptr]bool
	look func(where, text string)
}

func (w walker) walk(where string, v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		w.look(where, v.String())
	case reflect.Pointer, reflect.Map:
		if v.IsNil() || w.seen[v.Pointer()] {
			return
		}
		w.seen[v.Pointer()] = true
		if v.Kind() == reflect.Pointer {
			w.walk(where, v.Elem())
			return
		}
		for it := v.MapRange(); it.Next(); {
			w.walk(where+" key", it.Key())
			w.walk(fmt.Sprintf("%s[%v]", where, it.Key()), it.Value())
		}
	case reflect.Interface:
		w.walk(where, v.Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			w.walk(where+"."+v.Type().Field(i).Name, v.Field(i))
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			if v.Kind() == reflect.Slice {
				w.look(where, string(v.Bytes()))
			}
			return
		}
		for i := range v.Len() {
			w.walk(fmt.Sprintf("%s[%d]", where, i), v.Index(i))
		}
	}
}
