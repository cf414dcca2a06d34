package psatest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Autotask picklist values used by the simulator. Real tenants may use other
// integers: clients must read them from /{Entity}/entityInformation/fields,
// never hard-code them. Tests of the simulator itself may use these.
const (
	AutotaskPeriodMonthly    = 1
	AutotaskPeriodQuarterly  = 2
	AutotaskPeriodSemiAnnual = 3
	AutotaskPeriodYearly     = 4

	AutotaskContractTimeAndMaterials = 1
	AutotaskContractFixedPrice       = 3
	AutotaskContractBlockHours       = 4
	AutotaskContractRetainer         = 6
	AutotaskContractRecurringService = 7
	AutotaskContractPerTicket        = 8

	AutotaskContractStatusInactive = 0
	AutotaskContractStatusActive   = 1

	AutotaskUseTypeWorkType                 = 1
	AutotaskUseTypeMaterial                 = 2
	AutotaskUseTypeRecurringContractService = 4
	AutotaskUseTypeExpense                  = 5
)

// Autotask field data types as entityInformation/fields reports them.
const (
	typeInteger  = "integer"
	typeLong     = "long"
	typeDecimal  = "decimal"
	typeDouble   = "double"
	typeString   = "string"
	typeBoolean  = "boolean"
	typeDateTime = "datetime"
)

// Canonical names of the simulated entities.
const (
	entCompanies          = "Companies"
	entContracts          = "Contracts"
	entServices           = "Services"
	entBillingCodes       = "BillingCodes"
	entContractServices   = "ContractServices"
	entContractUnits      = "ContractServiceUnits"
	entContractAdjustment = "ContractServiceAdjustments"
)

type picklistValue struct {
	Value   int64
	Label   string
	Default bool
	Active  bool
}

type fieldDef struct {
	Name     string
	Type     string
	Length   int
	Required bool
	// ReadOnly fields are never written through the API; values sent for
	// them are ignored, as Autotask does.
	ReadOnly bool
	// CreateOnly fields are written on create and ignored on update.
	CreateOnly bool
	Ref        string
	Picklist   []picklistValue
	// ParentField names the picklist this one depends on (subIssueType on
	// issueType); Parents maps each value to its parent value.
	ParentField string
	Parents     map[int64]int64
}

func (f *fieldDef) numeric() bool {
	switch f.Type {
	case typeInteger, typeLong, typeDecimal, typeDouble:
		return true
	}
	return false
}

func (f *fieldDef) picklistLabel(v int64) (string, bool) {
	for _, p := range f.Picklist {
		if p.Value == v {
			return p.Label, true
		}
	}
	return "", false
}

func (f *fieldDef) picklistValue(label string) (int64, bool) {
	for _, p := range f.Picklist {
		if strings.EqualFold(p.Label, label) {
			return p.Value, true
		}
	}
	return 0, false
}

// entityDef describes one Autotask entity: its fields and what its root URLs
// allow. Child URLs under /Contracts/{id}/ are described by childDef.
type entityDef struct {
	Name     string
	Singular string
	Fields   []fieldDef
	UDF      bool // has userDefinedFields in its records
	// Parent is the field that holds the parent id of a child entity
	// (ticketID for TicketNotes); "" means contractID.
	Parent string

	CanGet, CanQuery, CanCreate, CanUpdate bool

	byLower map[string]*fieldDef
}

func (d *entityDef) field(name string) *fieldDef { return d.byLower[strings.ToLower(name)] }

// parentField is the field a child URL's parent id fills.
func (d *entityDef) parentField() string {
	if d.Parent != "" {
		return d.Parent
	}
	return "contractID"
}

// childDef is a child collection such as /Contracts/{id}/Services.
type childDef struct {
	Entity                     string
	CanList, CanGet, CanCreate bool
	CanUpdate                  bool
	ParentField                string
}

var (
	yesNoActive = []picklistValue{{0, "Inactive", false, true}, {1, "Active", true, true}}

	autotaskEntities = buildEntities(append(autotaskTicketEntities, []*entityDef{
		{
			Name: entCompanies, Singular: "Company", UDF: true,
			CanGet: true, CanQuery: true, CanCreate: true, CanUpdate: true,
			Fields: []fieldDef{
				{Name: "id", Type: typeLong, ReadOnly: true},
				{Name: "companyName", Type: typeString, Length: 100, Required: true},
				{Name: "companyNumber", Type: typeString, Length: 50},
				{Name: "companyType", Type: typeInteger, Required: true, Picklist: []picklistValue{
					{1, "Customer", true, true}, {2, "Lead", false, true}, {3, "Prospect", false, true},
					{4, "Dead", false, true}, {5, "Cancellation", false, true}, {6, "Vendor", false, true},
					{7, "Partner", false, true},
				}},
				{Name: "ownerResourceID", Type: typeInteger, Required: true, Ref: "Resource"},
				{Name: "phone", Type: typeString, Length: 25, Required: true},
				{Name: "isActive", Type: typeBoolean},
				{Name: "parentCompanyID", Type: typeInteger, Ref: entCompanies},
				{Name: "address1", Type: typeString, Length: 128},
				{Name: "address2", Type: typeString, Length: 128},
				{Name: "city", Type: typeString, Length: 50},
				{Name: "state", Type: typeString, Length: 25},
				{Name: "postalCode", Type: typeString, Length: 20},
				{Name: "countryID", Type: typeInteger},
				{Name: "webAddress", Type: typeString, Length: 255},
				{Name: "createDate", Type: typeDateTime, ReadOnly: true},
				{Name: "lastActivityDate", Type: typeDateTime, ReadOnly: true},
				{Name: "lastTrackedModifiedDateTime", Type: typeDateTime, ReadOnly: true},
			},
		},
		{
			Name: entContracts, Singular: "Contract", UDF: true,
			CanGet: true, CanQuery: true, CanCreate: true, CanUpdate: true,
			Fields: []fieldDef{
				{Name: "id", Type: typeLong, ReadOnly: true},
				{Name: "companyID", Type: typeInteger, Required: true, CreateOnly: true, Ref: entCompanies},
				{Name: "contractName", Type: typeString, Length: 100, Required: true},
				{Name: "contractNumber", Type: typeString, Length: 50},
				{Name: "contractType", Type: typeInteger, Required: true, CreateOnly: true, Picklist: []picklistValue{
					{AutotaskContractTimeAndMaterials, "Time & Materials", false, true},
					{AutotaskContractFixedPrice, "Fixed Price", false, true},
					{AutotaskContractBlockHours, "Block Hours", false, true},
					{AutotaskContractRetainer, "Retainer", false, true},
					{AutotaskContractRecurringService, "Recurring Service", false, true},
					{AutotaskContractPerTicket, "Per Ticket", false, true},
				}},
				{Name: "contractCategory", Type: typeInteger},
				{Name: "status", Type: typeInteger, Required: true, Picklist: yesNoActive},
				{Name: "startDate", Type: typeDateTime, Required: true},
				{Name: "endDate", Type: typeDateTime, Required: true},
				{Name: "timeReportingRequiresStartAndStopTimes", Type: typeInteger, Required: true},
				{Name: "billingPreference", Type: typeInteger},
				{Name: "contractPeriodType", Type: typeInteger},
				{Name: "contactID", Type: typeInteger},
				{Name: "description", Type: typeString, Length: 2000},
				{Name: "purchaseOrderNumber", Type: typeString, Length: 50},
				{Name: "serviceLevelAgreementID", Type: typeInteger},
				{Name: "setupFee", Type: typeDecimal},
				{Name: "setupFeeBillingCodeID", Type: typeLong, Ref: entBillingCodes},
				{Name: "isDefaultContract", Type: typeBoolean},
				{Name: "isCompliant", Type: typeBoolean, ReadOnly: true},
				{Name: "lastModifiedDateTime", Type: typeDateTime, ReadOnly: true},
			},
		},
		{
			Name: entServices, Singular: "Service", UDF: true,
			CanGet: true, CanQuery: true, CanCreate: true, CanUpdate: true,
			Fields: []fieldDef{
				{Name: "id", Type: typeLong, ReadOnly: true},
				{Name: "name", Type: typeString, Length: 150, Required: true},
				{Name: "description", Type: typeString, Length: 400},
				{Name: "invoiceDescription", Type: typeString, Length: 1000},
				{Name: "unitPrice", Type: typeDecimal, Required: true},
				{Name: "unitCost", Type: typeDecimal},
				{Name: "markupRate", Type: typeDecimal},
				{Name: "periodType", Type: typeInteger, Required: true, Picklist: []picklistValue{
					{AutotaskPeriodMonthly, "Monthly", true, true},
					{AutotaskPeriodQuarterly, "Quarterly", false, true},
					{AutotaskPeriodSemiAnnual, "Semi-Annual", false, true},
					{AutotaskPeriodYearly, "Yearly", false, true},
				}},
				{Name: "billingCodeID", Type: typeLong, Required: true, Ref: entBillingCodes},
				{Name: "isActive", Type: typeBoolean},
				{Name: "serviceLevelAgreementID", Type: typeLong},
				{Name: "vendorCompanyID", Type: typeInteger, Ref: entCompanies},
				{Name: "catalogNumberPartNumber", Type: typeString, Length: 50},
				{Name: "externalID", Type: typeString, Length: 50},
				{Name: "internalID", Type: typeString, Length: 50},
				{Name: "manufacturerServiceProvider", Type: typeString, Length: 100},
				{Name: "manufacturerServiceProviderProductNumber", Type: typeString, Length: 50},
				{Name: "sku", Type: typeString, Length: 50},
				{Name: "url", Type: typeString, Length: 500},
				{Name: "createDate", Type: typeDateTime, ReadOnly: true},
				{Name: "lastModifiedDate", Type: typeDateTime, ReadOnly: true},
				{Name: "creatorResourceID", Type: typeInteger, ReadOnly: true},
				{Name: "updateResourceID", Type: typeInteger, ReadOnly: true},
			},
		},
		{
			Name: entBillingCodes, Singular: "BillingCode",
			CanGet: true, CanQuery: true,
			Fields: []fieldDef{
				{Name: "id", Type: typeLong, ReadOnly: true},
				{Name: "name", Type: typeString, Length: 200, ReadOnly: true},
				{Name: "description", Type: typeString, Length: 500, ReadOnly: true},
				{Name: "externalNumber", Type: typeString, Length: 100, ReadOnly: true},
				{Name: "isActive", Type: typeBoolean, ReadOnly: true},
				{Name: "useType", Type: typeInteger, ReadOnly: true, Picklist: []picklistValue{
					{AutotaskUseTypeWorkType, "Work Type", false, true},
					{AutotaskUseTypeMaterial, "Material", false, true},
					{AutotaskUseTypeRecurringContractService, "Recurring Contract Service", false, true},
					{AutotaskUseTypeExpense, "Expense", false, true},
				}},
				{Name: "unitPrice", Type: typeDecimal, ReadOnly: true},
				{Name: "unitCost", Type: typeDecimal, ReadOnly: true},
			},
		},
		{
			Name: entContractServices, Singular: "ContractService", UDF: true,
			CanGet: true, CanQuery: true,
			Fields: []fieldDef{
				{Name: "id", Type: typeLong, ReadOnly: true},
				{Name: "contractID", Type: typeInteger, Required: true, CreateOnly: true, Ref: entContracts},
				{Name: "serviceID", Type: typeInteger, Required: true, CreateOnly: true, Ref: entServices},
				{Name: "unitPrice", Type: typeDecimal},
				{Name: "unitCost", Type: typeDecimal},
				{Name: "adjustedPrice", Type: typeDecimal, ReadOnly: true},
				{Name: "internalCurrencyUnitPrice", Type: typeDecimal, ReadOnly: true},
				{Name: "internalCurrencyAdjustedPrice", Type: typeDecimal, ReadOnly: true},
				{Name: "invoiceDescription", Type: typeString, Length: 1000},
				{Name: "internalDescription", Type: typeString, Length: 100},
				{Name: "quoteItemID", Type: typeLong},
			},
		},
		{
			Name: entContractUnits, Singular: "ContractServiceUnit",
			CanGet: true, CanQuery: true,
			Fields: []fieldDef{
				{Name: "id", Type: typeLong, ReadOnly: true},
				{Name: "contractID", Type: typeInteger, ReadOnly: true, Ref: entContracts},
				{Name: "contractServiceID", Type: typeLong, ReadOnly: true, Ref: entContractServices},
				{Name: "serviceID", Type: typeInteger, ReadOnly: true, Ref: entServices},
				{Name: "startDate", Type: typeDateTime, ReadOnly: true},
				{Name: "endDate", Type: typeDateTime, ReadOnly: true},
				{Name: "units", Type: typeInteger, ReadOnly: true},
				{Name: "price", Type: typeDecimal, ReadOnly: true},
				{Name: "cost", Type: typeDecimal, ReadOnly: true},
				{Name: "internalCurrencyPrice", Type: typeDecimal, ReadOnly: true},
				{Name: "approveAndPostDate", Type: typeDateTime, ReadOnly: true},
				{Name: "vendorCompanyID", Type: typeInteger, ReadOnly: true},
				{Name: "organizationalLevelAssociationID", Type: typeInteger, ReadOnly: true},
			},
		},
		{
			Name: entContractAdjustment, Singular: "ContractServiceAdjustment",
			CanCreate: true,
			Fields: []fieldDef{
				{Name: "id", Type: typeLong, ReadOnly: true},
				{Name: "contractID", Type: typeInteger, Required: true, Ref: entContracts},
				{Name: "serviceID", Type: typeInteger, Ref: entServices},
				{Name: "contractServiceID", Type: typeLong, Ref: entContractServices},
				{Name: "unitChange", Type: typeInteger, Required: true},
				{Name: "effectiveDate", Type: typeDateTime, Required: true},
				{Name: "adjustedUnitPrice", Type: typeDecimal},
				{Name: "adjustedUnitCost", Type: typeDecimal},
				{Name: "allowRepeatService", Type: typeBoolean},
				{Name: "quoteItemID", Type: typeLong},
				{Name: "contractServiceBundleID", Type: typeLong},
			},
		},
	}...))

	// contractChildren are the child collections under /Contracts/{id}/.
	contractChildren = map[string]childDef{
		"services":           {Entity: entContractServices, CanList: true, CanGet: true, CanCreate: true, CanUpdate: true, ParentField: "contractID"},
		"serviceunits":       {Entity: entContractUnits, CanList: true, CanGet: true, ParentField: "contractID"},
		"serviceadjustments": {Entity: entContractAdjustment, CanCreate: true, ParentField: "contractID"},
	}
)

func buildEntities(defs []*entityDef) map[string]*entityDef {
	m := make(map[string]*entityDef, len(defs))
	for _, d := range defs {
		d.byLower = make(map[string]*fieldDef, len(d.Fields))
		for i := range d.Fields {
			d.byLower[strings.ToLower(d.Fields[i].Name)] = &d.Fields[i]
		}
		m[strings.ToLower(d.Name)] = d
	}
	return m
}

func entity(name string) *entityDef { return autotaskEntities[strings.ToLower(name)] }

// record is one stored row: canonical field name → int64, float64, string,
// bool or time.Time. Absent means null.
type record map[string]any

func (r record) clone() record {
	c := make(record, len(r))
	for k, v := range r {
		c[k] = v
	}
	return c
}

func (r record) id() int64 { return r.int("id") }

func (r record) int(name string) int64 {
	switch v := r[name].(type) {
	case int64:
		return v
	case float64:
		return int64(v)
	}
	return 0
}

func (r record) float(name string) float64 {
	switch v := r[name].(type) {
	case int64:
		return float64(v)
	case float64:
		return v
	}
	return 0
}

func (r record) str(name string) string {
	s, _ := r[name].(string)
	return s
}

// active reads isActive, the only boolean field the simulator acts on.
func (r record) active() bool {
	b, _ := r["isActive"].(bool)
	return b
}

func (r record) time(name string) time.Time {
	t, _ := r[name].(time.Time)
	return t
}

// encodeRecord writes rec as a JSON object with the fields in definition
// order; include, when non-nil, limits the fields (id is always kept).
func encodeRecord(buf *bytes.Buffer, d *entityDef, rec record, include map[string]bool) {
	buf.WriteByte('{')
	first := true
	for i := range d.Fields {
		f := &d.Fields[i]
		if include != nil && f.Name != "id" && !include[f.Name] {
			continue
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		// Field names are ASCII identifiers (TestAutotaskFieldNamesNeedNoEscaping):
		// quoting them is all JSON asks.
		buf.WriteByte('"')
		buf.WriteString(f.Name)
		buf.WriteString(`":`)
		writeValue(buf, rec[f.Name])
	}
	if d.UDF && include == nil {
		if !first {
			buf.WriteByte(',')
		}
		buf.WriteString(`"userDefinedFields":[]`)
	}
	buf.WriteByte('}')
}

// writeValue writes v as JSON. Numbers and times are appended to buf's free
// space: a page of 500 unit rows writes 2,500 of them.
func writeValue(buf *bytes.Buffer, v any) {
	switch v := v.(type) {
	case nil:
		buf.WriteString("null")
	case int64:
		buf.Write(strconv.AppendInt(buf.AvailableBuffer(), v, 10))
	case float64:
		buf.Write(strconv.AppendFloat(buf.AvailableBuffer(), v, 'f', -1, 64))
	case time.Time:
		b := append(buf.AvailableBuffer(), '"')
		b = v.UTC().AppendFormat(b, timeLayout)
		buf.Write(append(b, '"'))
	default:
		data, _ := json.Marshal(v)
		buf.Write(data)
	}
}

// timeLayout is how the simulator spells times, as Autotask does.
const timeLayout = "2006-01-02T15:04:05.999Z07:00"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// parseTime accepts the ISO-8601 forms Autotask clients send. Values without
// a zone are UTC, as Autotask evaluates queries in UTC; values with one keep
// it, so that day can take the calendar date as written.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a valid date", s)
}

// day returns the calendar date of t, as written in t's own zone, at
// midnight UTC. Date fields (contract dates, effective dates, unit rows) are
// calendar days: "2026-11-01T00:00:00+01:00" is 1 November, not 31 October.
func day(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// coerce converts a decoded JSON value (json.Number, string, bool, nil) to
// the stored type of f, the way Autotask's case-insensitive deserialiser
// does.
func coerce(f *fieldDef, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch f.Type {
	case typeInteger, typeLong:
		var n float64
		switch v := v.(type) {
		case json.Number:
			x, err := v.Float64()
			if err != nil {
				return nil, fmt.Errorf("the value %s for field %s is not a valid integer", v, f.Name)
			}
			n = x
		case string:
			x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return nil, fmt.Errorf("the value %q for field %s is not a valid integer", v, f.Name)
			}
			n = x
		default:
			return nil, fmt.Errorf("the value for field %s is not a valid integer", f.Name)
		}
		if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return nil, fmt.Errorf("the value %v for field %s is not a valid integer", n, f.Name)
		}
		if f.Picklist != nil {
			if _, ok := f.picklistLabel(int64(n)); !ok {
				return nil, fmt.Errorf("the value %d is not a valid picklist value for field %s", int64(n), f.Name)
			}
		}
		return int64(n), nil
	case typeDecimal, typeDouble:
		switch v := v.(type) {
		case json.Number:
			x, err := v.Float64()
			if err != nil {
				return nil, fmt.Errorf("the value %s for field %s is not a valid number", v, f.Name)
			}
			return x, nil
		case string:
			x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return nil, fmt.Errorf("the value %q for field %s is not a valid number", v, f.Name)
			}
			return x, nil
		}
		return nil, fmt.Errorf("the value for field %s is not a valid number", f.Name)
	case typeBoolean:
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("the value for field %s must be true or false", f.Name)
		}
		return b, nil
	case typeDateTime:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("the value for field %s is not a valid date", f.Name)
		}
		t, err := parseTime(s)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name, err)
		}
		return t, nil
	default:
		switch v := v.(type) {
		case string:
			if f.Length > 0 && utf16Length(v) > f.Length {
				return nil, fmt.Errorf("the value for field %s exceeds the maximum length of %d", f.Name, f.Length)
			}
			return v, nil
		case json.Number:
			return v.String(), nil
		case bool:
			return strconv.FormatBool(v), nil
		}
		return nil, fmt.Errorf("the value for field %s is not a valid string", f.Name)
	}
}

// decodeObject parses a JSON object keeping numbers exact.
func decodeObject(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, fmt.Errorf("the request body is not a valid JSON object")
	}
	return m, nil
}

// decodeInput converts a create/update body into canonical field values.
// Unknown properties are ignored, as Autotask's deserialiser does; the
// returned set names the fields that were present.
func decodeInput(d *entityDef, data []byte) (record, error) {
	m, err := decodeObject(data)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	in := record{}
	for _, k := range keys {
		f := d.field(k)
		if f == nil {
			continue
		}
		v, err := coerce(f, m[k])
		if err != nil {
			return nil, err
		}
		in[f.Name] = v
	}
	return in, nil
}

// missingRequired returns the names of required fields that are null.
func missingRequired(d *entityDef, rec record) []string {
	var out []string
	for _, f := range d.Fields {
		if !f.Required {
			continue
		}
		v := rec[f.Name]
		if s, ok := v.(string); v == nil || (ok && strings.TrimSpace(s) == "") {
			out = append(out, f.Name)
		}
	}
	return out
}

// entityInformation is the body of GET /{Entity}/entityInformation.
func entityInformation(d *entityDef) map[string]any {
	access := func(ok bool) string {
		if ok {
			return "Allowed"
		}
		return "Disallowed"
	}
	return map[string]any{"info": map[string]any{
		"name":                    d.Singular,
		"canCreate":               d.CanCreate,
		"canDelete":               false,
		"canQuery":                d.CanQuery,
		"canUpdate":               d.CanUpdate,
		"hasUserDefinedFields":    d.UDF,
		"supportsWebhookCallouts": false,
		"userAccessForCreate":     access(d.CanCreate),
		"userAccessForDelete":     access(false),
		"userAccessForQuery":      access(d.CanQuery),
		"userAccessForUpdate":     access(d.CanUpdate),
	}}
}

type fieldInfo struct {
	Name                     string          `json:"name"`
	DataType                 string          `json:"dataType"`
	Length                   int             `json:"length"`
	IsRequired               bool            `json:"isRequired"`
	IsReadOnly               bool            `json:"isReadOnly"`
	IsQueryable              bool            `json:"isQueryable"`
	IsReference              bool            `json:"isReference"`
	ReferenceEntityType      string          `json:"referenceEntityType"`
	IsPickList               bool            `json:"isPickList"`
	PicklistValues           []picklistEntry `json:"picklistValues"`
	PicklistParentValueField string          `json:"picklistParentValueField"`
	IsSupportedWebhookField  bool            `json:"isSupportedWebhookField"`
}

type picklistEntry struct {
	Value          string `json:"value"`
	Label          string `json:"label"`
	IsDefaultValue bool   `json:"isDefaultValue"`
	SortOrder      int    `json:"sortOrder"`
	ParentValue    string `json:"parentValue"`
	IsActive       bool   `json:"isActive"`
	IsSystem       bool   `json:"isSystem"`
}

// entityFields is the body of GET /{Entity}/entityInformation/fields.
func entityFields(d *entityDef) map[string]any {
	out := make([]fieldInfo, 0, len(d.Fields))
	for _, f := range d.Fields {
		fi := fieldInfo{
			Name:                     f.Name,
			DataType:                 f.Type,
			Length:                   f.Length,
			IsRequired:               f.Required,
			IsReadOnly:               f.ReadOnly,
			IsQueryable:              d.CanQuery,
			IsReference:              f.Ref != "",
			ReferenceEntityType:      f.Ref,
			IsPickList:               f.Picklist != nil,
			PicklistParentValueField: f.ParentField,
		}
		for i, p := range f.Picklist {
			fi.PicklistValues = append(fi.PicklistValues, picklistEntry{
				Value:          strconv.FormatInt(p.Value, 10),
				Label:          p.Label,
				IsDefaultValue: p.Default,
				SortOrder:      i + 1,
				IsActive:       p.Active,
				IsSystem:       true,
			})
			if parent, ok := f.Parents[p.Value]; ok {
				fi.PicklistValues[i].ParentValue = strconv.FormatInt(parent, 10)
			}
		}
		out = append(out, fi)
	}
	return map[string]any{"fields": out}
}
