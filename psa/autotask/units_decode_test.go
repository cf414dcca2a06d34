package autotask

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"testing"
)

// decodeUnitPageBodies are pages of unit rows as Autotask writes them, and
// as it might: spaced out, with nulls, fields left out, keys in another
// order or case, escapes, unknown fields, numbers of every form, and
// broken JSON.
var decodeUnitPageBodies = []string{
	string(unitsPage(3)),
	`{"items":[],"pageDetails":{"count":0,"requestCount":500,"prevPageUrl":null,"nextPageUrl":null}}`,
	"{ \"pageDetails\" : {\"count\":1, \"nextPageUrl\":\"http://x/next?a=1\\u0026b=\\\"2\\\"\"} ,\n\t\"items\" : [ { \"units\" : 3 , \"id\" : 7 , \"price\" : 1.5e1 } ] }\r\n",
	`{"items":[{"id":1,"contractID":2,"contractServiceID":3,"serviceID":4,"startDate":"2026-12-01T00:00:00","endDate":"2026-12-31","units":-0,"price":0.25,"cost":null,"approveAndPostDate":null,"vendorCompanyID":99}]}`,
	`{"items":[{"id":1,"units":null}]}`,
	`{"items":[{"id":1}]}`,
	`{"items":[{"id":1,"units":2,"units":null}]}`,
	`{"items":[{"id":1,"units":null,"units":4,"vendorCompanyID":5,"vendorCompanyID":null}]}`,
	`{"items":[{"id":1,"units":2,"startDate":""}]}`,
	`{"items":[{"id":1,"units":2,"startDate":"yesterday"}]}`,
	`{"items":[{"id":1,"units":2,"startDate":"2026-12-01T00:00:00\u005a"}]}`,
	`{"items":[{"id":1,"units":2,"startDate":12}]}`,
	`{"items":[{"ID":1,"Units":2}]}`,
	`{"items":[{"id":1,"units":2,"unknown":{"a":[1,2]}}]}`,
	`{"items":[{"id":1.0,"units":2}]}`,
	`{"items":[{"id":1e2,"units":2}]}`,
	`{"items":[{"id":"1","units":2}]}`,
	`{"items":[{"id":9223372036854775808,"units":2}]}`,
	`{"items":[{"id":01,"units":2}]}`,
	`{"items":[{"id":1,"units":2,"price":1e400}]}`,
	`{"items":[{"id":1,"units":2,"price":-}]}`,
	`{"items":[null]}`,
	`{"items":null}`,
	`{"items":[{"id":1,"units":2}],"items":[{"id":3,"units":4}]}`,
	`{"items":[{"id":1,"units":2}],"pageDetails":{"count":1},"pageDetails":{"count":2}}`,
	`{"items":[{"id":1,"units":2}],"pageDetails":{"count":1,"nextPageUrl":"bad\x01"}}`,
	`{"items":[{"id":1,"units":2}],"pageDetails":{"nextPageUrl":"\q"}}`,
	`{"items":[{"id":1,"units":2}],"pageDetails":[true,false,null,{}]}`,
	`{"items":[{"id":1,"units":2}],"other":1}`,
	`{"items":[{"id":1,"units":2}]} x`,
	`{"items":[{"id":1,"units":2}],}`,
	`{"items":[{"id":1,"units":2},]}`,
	`{"items":[{"id":1 "units":2}]}`,
	`{"items":[{"id":1,"units":2}]`,
	`{}`,
	`[]`,
	"{\"items\":[{\"id\":1,\"units\":2,\"startDate\":\"2026-12-01T00:00:00Z\xff\"}]}",
}

// TestDecodeUnitPage holds the fast decoding of unit rows to
// encoding/json: whatever page it takes, it decodes to the rows and the
// pageDetails that encoding/json decodes, rows that validate alike; what
// it does not take, encoding/json decodes as before. The pages psa-syncd
// reads (the simulator's, Autotask's own) take the fast path.
func TestDecodeUnitPage(t *testing.T) {
	t.Parallel()
	for _, body := range decodeUnitPageBodies {
		checkDecodeUnitPage(t, []byte(body))
	}
	var env listResponse[unitJSON]
	for _, body := range [][]byte{unitsPage(MaxPageSize), []byte(decodeUnitPageBodies[1]), []byte(decodeUnitPageBodies[2]), []byte(decodeUnitPageBodies[3])} {
		if !env.decodeFast(body) {
			t.Errorf("a page as Autotask writes it did not take the fast path: %.200s", body)
		}
	}
}

// FuzzDecodeUnitPage checks TestDecodeUnitPage's property on any body.
//
//	go test -run '^$' -fuzz FuzzDecodeUnitPage -fuzztime 1m ./psa/autotask/
func FuzzDecodeUnitPage(f *testing.F) {
	for _, body := range decodeUnitPageBodies {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkDecodeUnitPage(t, body) })
}

// checkDecodeUnitPage fails t when the fast path takes body and decodes it
// otherwise than encoding/json does.
func checkDecodeUnitPage(t *testing.T, body []byte) {
	t.Helper()
	var fast listResponse[unitJSON]
	if !fast.decodeFast(body) {
		if fast.Items != nil || fast.Page != nil {
			t.Errorf("the fast path refused %q but changed the response", body)
		}
		return
	}
	var want listResponse[unitJSON]
	if err := json.Unmarshal(body, &want); err != nil {
		t.Errorf("the fast path took %q, which encoding/json refuses: %v", body, err)
		return
	}
	if !bytes.Equal(fast.Page, want.Page) {
		t.Errorf("%q: pageDetails %q, encoding/json %q", body, fast.Page, want.Page)
	}
	fastErr, wantErr := fast.validate(), want.validate()
	if (fastErr == nil) != (wantErr == nil) || fastErr != nil && fastErr.Error() != wantErr.Error() {
		t.Errorf("%q: validation %v, encoding/json's %v", body, fastErr, wantErr)
		return
	}
	if (fast.Items == nil) != (want.Items == nil) || len(fast.Items) != len(want.Items) {
		t.Errorf("%q: %d rows (nil %v), encoding/json %d (nil %v)", body, len(fast.Items), fast.Items == nil, len(want.Items), want.Items == nil)
		return
	}
	if wantErr != nil {
		return
	}
	got, gotErr := units(fast.Items)
	exp, expErr := units(want.Items)
	if fmt.Sprint(gotErr) != fmt.Sprint(expErr) || len(got) != len(exp) {
		t.Errorf("%q: %d rows, unreadable %v; encoding/json %d rows, unreadable %v", body, len(got), gotErr, len(exp), expErr)
		return
	}
	for i := range got {
		if !reflect.DeepEqual(*got[i], *exp[i]) {
			t.Errorf("%q: row %d = %+v, encoding/json %+v", body, i, *got[i], *exp[i])
		}
	}
}

// TestParseInt holds parseInt to strconv.ParseInt, for the JSON numbers
// (no "+" sign) it is given and some it refuses.
func TestParseInt(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"0", "-0", "7", "-7", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
		"-9223372036854775809", "18446744073709551615", "18446744073709551616", "99999999999999999999", "", "-", "1.0", "1e3", "0x1"} {
		got, ok := parseInt([]byte(s))
		want, err := strconv.ParseInt(s, 10, 64)
		if ok != (err == nil) || ok && got != want {
			t.Errorf("parseInt(%q) = %d, %v; strconv.ParseInt: %d, %v", s, got, ok, want, err)
		}
	}
}
