package autotask

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// EntityInformationService reads entity metadata: field definitions and
// their picklists. Picklist values differ between tenants (the contract type
// "Recurring Service" is 7 in some, 6 in others), so psa-sync always looks
// them up by label instead of hard-coding them. Field definitions are cached
// for the life of the Client.
type EntityInformationService service

// Field describes a field of an entity.
type Field struct {
	Name                     string          `json:"name"`
	DataType                 string          `json:"dataType"`
	Length                   int             `json:"length"`
	IsRequired               bool            `json:"isRequired"`
	IsReadOnly               bool            `json:"isReadOnly"`
	IsQueryable              bool            `json:"isQueryable"`
	IsReference              bool            `json:"isReference"`
	ReferenceEntityType      string          `json:"referenceEntityType"`
	IsPickList               bool            `json:"isPickList"`
	PicklistValues           []PicklistValue `json:"picklistValues"`
	PicklistParentValueField string          `json:"picklistParentValueField"`
	IsSupportedWebhookField  bool            `json:"isSupportedWebhookField"`
}

// PicklistValue is one value of a picklist field. Value is a string on the
// wire even though the entity field holds an integer.
type PicklistValue struct {
	Value          string `json:"value"`
	Label          string `json:"label"`
	IsDefaultValue bool   `json:"isDefaultValue"`
	SortOrder      int    `json:"sortOrder"`
	ParentValue    string `json:"parentValue"`
	IsActive       bool   `json:"isActive"`
	IsSystem       bool   `json:"isSystem"`
}

// Int returns the value as an integer.
func (v PicklistValue) Int() (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v.Value), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("autotask: picklist value %q (%s) is not an integer", v.Value, v.Label)
	}
	return n, nil
}

type fieldsResponse struct {
	Fields []*Field `json:"fields"`
}

// validate refuses an answer without fields: every entity has some, so it
// is not Autotask's answer (and its picklists would read as missing).
func (r *fieldsResponse) validate() error {
	if len(r.Fields) == 0 {
		return &missingKeyError{key: `"fields"`}
	}
	return nil
}

// Fields returns the field definitions of entity (GET
// {Entity}/entityInformation/fields). The first successful answer per entity
// is cached for the life of the client; the Response is nil when cached.
// The request names an entity type, never a record, so a 404 is of the
// endpoint (a base URL that is not the tenant's) and matches
// psa.ErrEndpointNotFound, as a query's does (see queryError).
func (s *EntityInformationService) Fields(ctx context.Context, entity string) ([]*Field, *Response, error) {
	c := s.client
	key := strings.ToLower(entity)
	c.fieldsMu.Lock()
	defer c.fieldsMu.Unlock()
	if f, ok := c.fields[key]; ok {
		return f, nil, nil
	}
	req, err := c.NewRequest(ctx, "GET", entity+"/entityInformation/fields", nil)
	if err != nil {
		return nil, nil, err
	}
	var fr fieldsResponse
	resp, err := c.Do(ctx, req, &fr)
	if err != nil {
		return nil, resp, queryError(err)
	}
	c.fields[key] = fr.Fields
	return fr.Fields, resp, nil
}

// Picklist returns the picklist values of entity.field.
func (s *EntityInformationService) Picklist(ctx context.Context, entity, field string) ([]PicklistValue, error) {
	fields, _, err := s.Fields(ctx, entity)
	if err != nil {
		return nil, err
	}
	for _, f := range fields {
		if strings.EqualFold(f.Name, field) {
			if !f.IsPickList && len(f.PicklistValues) == 0 {
				return nil, &PicklistError{Entity: entity, Field: field, msg: "is not a picklist"}
			}
			return f.PicklistValues, nil
		}
	}
	return nil, &PicklistError{Entity: entity, Field: field, msg: "does not exist"}
}

// PicklistValue returns the value of entity.field whose label equals label,
// ignoring case, spaces and punctuation ("Semi-Annual" equals "semi annual").
// Inactive values are used only when no active value has the label.
func (s *EntityInformationService) PicklistValue(ctx context.Context, entity, field, label string) (int64, error) {
	values, err := s.Picklist(ctx, entity, field)
	if err != nil {
		return 0, err
	}
	want := normLabel(label)
	var inactive *PicklistValue
	for i, v := range values {
		if normLabel(v.Label) != want {
			continue
		}
		if v.IsActive {
			return v.Int()
		}
		if inactive == nil {
			inactive = &values[i]
		}
	}
	if inactive != nil {
		return inactive.Int()
	}
	labels := make([]string, 0, len(values))
	for _, v := range values {
		labels = append(labels, strconv.Quote(v.Label))
	}
	return 0, &PicklistError{Entity: entity, Field: field, msg: fmt.Sprintf("has no value labelled %q (labels: %s)", label, strings.Join(labels, ", "))}
}

// PicklistLabel returns the label of value in entity.field.
func (s *EntityInformationService) PicklistLabel(ctx context.Context, entity, field string, value int64) (string, error) {
	values, err := s.Picklist(ctx, entity, field)
	if err != nil {
		return "", err
	}
	for _, v := range values {
		if n, err := v.Int(); err == nil && n == value {
			return v.Label, nil
		}
	}
	return "", &PicklistError{Entity: entity, Field: field, msg: fmt.Sprintf("has no value %d", value)}
}

// PicklistError is returned when the tenant's metadata lacks a picklist, or
// a value or label in it, as opposed to a failed request.
type PicklistError struct {
	Entity, Field string

	msg string
}

// Error names the picklist and what is wrong with it.
func (e *PicklistError) Error() string {
	return fmt.Sprintf("autotask: picklist %s.%s %s", e.Entity, e.Field, e.msg)
}
