// Package export reads, validates and writes the mapping export: the JSON
// document (schema "psa-sync.mapping-export/v1") in which the Terraform
// provider records product and customer mappings and psa-syncd reads them.
//
// A document belongs to one PSA system and instance. Product mappings are
// keyed by (source, product) and customer mappings by (source, customer_id).
// Encode writes the mappings sorted by key with two-space indentation, so
// equal documents are equal bytes and changes diff well in review. The
// document has no field for credentials.
//
// The optional "tickets" object (Tickets, written by psa_ticket_routing) is
// the ticket routing of psa-syncd's ticket sync. Documents written before it
// existed have none and decode as before; it is validated for the
// document's PSA system (Kaseya BMS tickets, for example, need a status, a
// ticket type and a source).
//
// Decode is strict: unknown fields, values of the wrong type and trailing
// data are errors, and every problem is reported at once, naming the entry
// and field (a *ValidationError), or the line and column of broken JSON (a
// *SyntaxError). Store adds the file name. Validate accepts any non-empty
// id; CheckIDs also requires each company_id, contract_id and service_id
// to be spelled as the PSA writes ids (psa.CheckID), which psa-syncd
// requires of the export it syncs.
//
// The export lives in a store, a Backend named by a URL (OpenBackend): a
// file (FileBackend, locked and replaced atomically like Store), an object
// in S3 or an S3-compatible store (S3Backend, conditional writes with
// If-Match/If-None-Match), or psa-syncd itself (HTTPBackend, its
// /api/v1/export). A Client reads and updates the export in any of them:
// each write is a compare-and-swap on the version read, re-read and
// re-applied on conflict, concurrent writes are sent together, and each
// version is decoded once.
//
//	b, err := export.OpenBackend(ctx, "s3://msp-psa-sync/psa-mappings.json?region=eu-central-1", export.BackendOptions{})
//	if err != nil {
//		return err
//	}
//	c := export.NewClient(b)
//	_, err = c.Update(ctx, psa.SystemAutotask, "webservices5.autotask.net", func(d *export.Document) error {
//		d.PutProduct(export.ProductMapping{Source: "sophos", Product: "CIXA-MSP", ServiceID: "30000012", SyncEnabled: true})
//		return nil
//	})
//
// Store.Update, the file store's own writer, serialises writers within the
// process and across processes, never overwrites a file it could not read,
// writes nothing when nothing changed, and replaces the file atomically.
//
// Usage, as a provider resource's Create would do it:
//
//	store := export.NewStore("psa-mappings.json")
//	doc, err := store.Update(psa.SystemAutotask, "webservices5.autotask.net", func(d *export.Document) error {
//		d.PutCustomer(export.CustomerMapping{
//			Source: "sophos", CustomerID: "718b6047-2f4c-4f8e-9d27-3f0d9a1c5e11", CustomerName: "Acme",
//			CompanyID: "174", ContractID: "29684183", UsageSync: true,
//		})
//		return nil
//	})
//	if err != nil {
//		return err // export "psa-mappings.json": not valid JSON at line 9, column 1 (byte 212): ...
//	}
//	fmt.Println("export revision", doc.Revision)
//
// and as the daemon reads it:
//
//	doc, err := export.NewStore(path).Read()
//	if errors.Is(err, fs.ErrNotExist) { ... } // nothing exported yet
//	var verr *export.ValidationError
//	if errors.As(err, &verr) { ... }          // keep the last good export
package export
