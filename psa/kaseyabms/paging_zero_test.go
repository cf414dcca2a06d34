package kaseyabms_test

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/psa/kaseyabms"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestClient_pagingFromZeroWithoutTotal: the account lookup has no
// totalRecords. On an endpoint whose pages count from 0, with more than a
// page of matches, page 1 is the second page and is not empty: the walk
// from 1 ends on its short page, and only asking for page 0 finds the
// first 100 records. It is asked for once; the next listing starts at 0.
func TestClient_pagingFromZeroWithoutTotal(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var pages pageLog
	f.mux.HandleFunc("GET /v2/crm/accounts/lookup", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("PageNumber"))
		size, _ := strconv.Atoi(r.URL.Query().Get("PageSize"))
		pages.add(strconv.Itoa(n))
		var items []string
		for i := n*size + 1; i <= min((n+1)*size, 150); i++ {
			items = append(items, fmt.Sprintf(`{"id":%d,"name":"Acme %d"}`, i, i))
		}
		fmt.Fprintf(w, `{"success":true,"result":[%s]}`, strings.Join(items, ","))
	})
	for i, want := range [][]string{{"1", "0"}, {"0", "1"}} {
		all, _, err := f.client.Accounts.LookupAll(t.Context(), kaseyabms.AccountLookupOptions{Name: "Acme"})
		if err != nil {
			t.Fatalf("listing %d: LookupAll: %v", i+1, err)
		}
		ids := make([]int, len(all))
		for j, a := range all {
			ids[j] = a.ID
		}
		if len(ids) != 150 || !slices.IsSorted(ids) || ids[0] != 1 {
			t.Errorf("listing %d: LookupAll returned %d accounts (%v), want ids 1..150 in order", i+1, len(ids), ids)
		}
		if got := pages.take(); !cmp.Equal(got, want) {
			t.Errorf("listing %d: pages = %v, want %v", i+1, got, want)
		}
	}
}

// TestBackend_FindCompanies_pagesFromZero: 151 accounts match "Acme" on a
// BMS counting pages from 0, and the one named exactly "Acme" is on page
// 0. FindCompanies must find it (it found none, with no error).
func TestBackend_FindCompanies_pagesFromZero(t *testing.T) {
	t.Parallel()
	b, srv := newSimBackend(t)
	k := srv.KaseyaBMS()
	k.SetPaging(psatest.KaseyaBMSPagesFromZero)
	target := k.AddAccount("Acme")
	for i := 1; i <= 150; i++ {
		k.AddAccount(fmt.Sprintf("Acme %03d", i))
	}
	got, err := b.FindCompanies(t.Context(), "Acme")
	if err != nil || len(got) != 1 || got[0].ID != strconv.Itoa(target) {
		t.Errorf("FindCompanies(Acme) = %+v, %v; want account %d", got, err, target)
	}
}

// TestBackend_GetContracts_pagesFromZero: 150 accounts with a contract
// each, on a BMS counting pages from 0. GetContracts of all of them joins
// the account lookup, which has no totalRecords: every contract must come
// with its company (100 came without one, the accounts of page 0).
func TestBackend_GetContracts_pagesFromZero(t *testing.T) {
	t.Parallel()
	b, srv := newSimBackend(t)
	k := srv.KaseyaBMS()
	k.SetPaging(psatest.KaseyaBMSPagesFromZero)
	owner := map[string]string{}
	var ids []string
	for i := 1; i <= 150; i++ {
		a := k.AddAccount(fmt.Sprintf("Customer %03d", i))
		c := strconv.Itoa(k.AddContract(psatest.KaseyaBMSContract{AccountID: a, Name: fmt.Sprintf("MS %03d", i)}))
		owner[c] = strconv.Itoa(a)
		ids = append(ids, c)
	}
	got, err := b.GetContracts(t.Context(), ids)
	if err != nil || len(got) != 150 {
		t.Fatalf("GetContracts of 150 ids = %d contracts, %v", len(got), err)
	}
	wrong := 0
	for _, id := range ids {
		if c := got[id]; c == nil || c.CompanyID != owner[id] {
			wrong++
		}
	}
	if wrong > 0 {
		t.Errorf("%d of 150 contracts without their company", wrong)
	}
}
