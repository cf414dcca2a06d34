package export

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fastDecodeCases are documents on the edges of what decodeFast accepts,
// with whether it does; the decoder that names every problem decides the
// rest (see TestDecodeFast). They also seed FuzzDecodeFast.
var fastDecodeCases = map[string]bool{
	`{"schema":"psa-sync.mapping-export/v1","psa":{"system":"autotask","instance":"x"},"revision":3,"updated_at":"2026-11-21T10:00:00+01:00",` +
		`"integration":{"enabled":true,"schedule":"daily 02:00","timezone":"Europe/Rome"},` +
		`"tickets":{"enabled":true,"queue_id":"5","priorities":{"high":"1"},"max_per_pass":10},` +
		`"product_mappings":[{"source":"file","product":"P","service_id":"1","service_name":"S","sync_enabled":true}],` +
		`"customer_mappings":[{"source":"file","customer_id":"C","customer_name":"N","company_id":"2","contract_id":"3","usage_sync":true,"ticket_sync":false}]}`: true,
	// null is a missing value; missing lists are empty.
	`{"schema":"psa-sync.mapping-export/v1","psa":{"system":"connectwise","instance":null},"revision":null,"updated_at":null,"integration":null,"tickets":null,"product_mappings":null}`:                         true,
	`{"schema":"psa-sync.mapping-export/v1","psa":{"system":"connectwise"},"customer_mappings":[{"source":"file","customer_id":"C","company_id":"2","contract_id":"3","customer_name":null,"usage_sync":null}]}`: true,
	// Keys may be escaped; they are compared unescaped.
	`{"sch\u0065ma":"psa-sync.mapping-export/v1","psa":{"system":"kaseya_bms"}}`:     true,
	` {"schema":"psa-sync.mapping-export/v1","psa":{"system":"kaseya_bms"}} ` + "\n": true,

	// Everything the decoder has to name or repair.
	`{"schema":"psa-sync.mapping-export/v1","psa":{"system":"kaseya_bms"},"psa":{"system":"kaseya_bms"}}`:                     false,
	`{"schema":"psa-sync.mapping-export/v1","psa":{"system":"kaseya_bms","system":"autotask"}}`:                               false,
	`{"schema":"psa-sync.mapping-export/v1","psa":{"system":"kaseya_bms"},"customer_mappings":[{"source":"a","source":"b"}]}`: false,
	`{"Schema":"psa-sync.mapping-export/v1","psa":{"system":"kaseya_bms"}}`:                                                   false,
	`{"schema":"psa-sync.mapping-export/v1","psa":{"system":"kaseya_bms"},"extra":1}`:                                         false,
	`{"schema":"psa-sync.mapping-export/v1","psa":{"system":"kaseya_bms"},"customer_mappings":[null]}`:                        false,
	`{"schema":"psa-sync.mapping-export/v1","psa":{"system":"kaseya_bms"},"customer_mappings":[{"Source":"file"}]}`:           false,
	`{"schema":"psa-sync.mapping-export/v1","psa":{"system":"kaseya_bms"},"customer_mappings":{}}`:                            false,
	`{"schema":"psa-sync.mapping-export/v1","psa":{"system":"kaseya_bms"},"product_mappings":[{"sync_enabled":"yes"}]}`:       false,
	`{"schema":"psa-sync.mapping-export/v1","psa":{"system":"kaseya_bms"},"revision":1.0}`:                                    false,
	`{"schema":"psa-sync.mapping-export/v1","psa":{"system":"kaseya_bms"},"revision":1e2}`:                                    false,
	`{"schema":"psa-sync.mapping-export/v1","psa":{"system":"kaseya_bms"},"revision":"1"}`:                                    false,
	`{"schema":"psa-sync.mapping-export/v1","psa":{"system":"kaseya_bms"},"updated_at":"2026-11-21 10:00"}`:                   false,
	`{"schema":"psa-sync.mapping-export/v1","psa":{"system":"kaseya_bms"},"updated_at":"2026-11-21T10:00:00\u005a"}`:          false,
	`{"schema":"psa-sync.mapping-export/v1","psa":"autotask"}`:                                                                false,
	`{"schema":"psa-sync.mapping-export/v1","psa":{"system":"kaseya_bms"},"integration":{"enabled":1}}`:                       false,
	`{"schema":"psa-sync.mapping-export/v1","psa":{"system":"kaseya_bms"},"tickets":{"priorities":[]}}`:                       false,
	`{"schema":"psa-sync.mapping-export/v1","psa":{"system":"kaseya_bms"}}{}`:                                                 false,
	`{"schema":"psa-sync.mapping-export/v1","psa":{"system":"kaseya_bms"}`:                                                    false,
	`[]`:   false,
	`null`: false,
	"{\"schema\":\"psa-sync.mapping-export/v1\",\"psa\":{\"system\":\"kaseya_bms\",\"instance\":\"\xff\"}}": false,
	`{"schema":"psa-sync.mapping-export/v1","psa":{"system":"kaseya_bms","instance":"\ud800"}}`:             false,
}

// TestDecodeFast: decodeFast accepts clean documents, refuses the others,
// and returns what the decoder that names every problem returns.
func TestDecodeFast(t *testing.T) {
	t.Parallel()
	for data, want := range fastDecodeCases {
		fast, ok := decodeFast([]byte(data))
		if ok != want {
			t.Errorf("decodeFast(%s) ok = %t, want %t", data, ok, want)
			continue
		}
		if !ok {
			continue
		}
		slow, err := decodeSlow([]byte(data))
		if err != nil {
			t.Errorf("decodeSlow(%s) returned error %v", data, err)
			continue
		}
		if diff := cmp.Diff(slow, fast); diff != "" {
			t.Errorf("decodeFast(%s) differs from decodeSlow (-slow +fast):\n%s", data, diff)
		}
	}
}
