// Package file is a usage source that reads a CSV or JSON snapshot, for
// vendors that publish usage as files rather than through an API (Password
// Boss, for example).
//
// A CSV file starts with a header row naming its columns, in any order:
//
//	customer_id,customer_name,product,product_name,quantity,period
//	718b6047-2fbc-b4f4-1a43-45ee42bf5d3b,Acme,PB-STD,Password Boss Standard,20,2026-10
//	,,PB-STD,Password Boss Standard,3,2026-10
//
// customer_id, product and quantity are required columns; the others are
// optional. The columns are separated by commas, or by ";" or tabs when the
// header is: a header line without a comma whose first column, split on ";"
// (Excel's CSV where a comma is the decimal separator) or a tab, is a known
// one. Excel's "sep=;" first line ("sep=," or "sep=" and a tab; in quotes
// too; followed by more of that separator only, as a sheet with sep=; in
// cell A1 saves it: sep=;;;;) names the separator, and the header is then
// line 2. The lines end in LF, CR LF, or CR alone (Excel's "CSV
// (Macintosh)") in a file without a line feed. The rows are read as those of
// commas: a field in quotes may hold the separator. A column the format does
// not know rejects the whole file, so a misspelt optional column
// (customer_nam) cannot silently drop data; the error of a header that a
// spreadsheet's export settings made so (a header of ";" or tabs that holds
// a comma too, a "sep=" line of another separator, or followed by other
// characters, or before a header of commas, lines that end in a carriage
// return alone in a file that holds a line feed too, a column without a
// name) says so, and how to save the file instead. A UTF-8 byte-order mark
// is ignored.
//
// A JSON file holds an array of objects with the same keys, or an object
// {"records": [...]} wrapping that array; its lines, too, may end in CR
// alone in a file without a line feed. Values are strings or numbers. An
// object that gives a key twice ({"quantity": 5, "quantity": 500}) is a bad
// row: JSON readers differ on which value counts (encoding/json keeps the
// last), so neither is used.
//
// Every row is checked on its own: a missing product, a quantity that is not
// a whole number or is negative, a row with the wrong number of columns, an
// unknown or repeated JSON key, or a period other than the requested one is
// reported as a source.Problem with its line number ("usage.csv:14: quantity
// \"x\" is not a whole number") and skipped; the rest of the file still
// counts. The period is read first: a row whose period is another one is not
// this period's usage, whatever else is wrong with it, and is only reported.
// A skipped row that may have held usage is marked Unreadable with the
// customer_id it names, so that the daemon syncs none of that customer's
// lines rather than lower them. A customer_id or product that a
// spreadsheet wrote in scientific notation ("1.23457E+15", a long number's
// last digits lost), or not in UTF-8 in a file that cannot be read as
// Windows-1252 (Excel's "CSV (Comma delimited)" writes the Windows code
// page: a file that is Windows-1252 text, with no UTF-8 text in it, is
// read as such, its records' Codepage set, but for a JSON row whose ids
// are written in ASCII and escapes: an escape names its character
// whatever the code page), makes a bad row too: one of any customer
// for a customer_id, of any product of its customer for a product. In a
// JSON file too: the bytes of a string that are not UTF-8 are kept as they
// are, where encoding/json would read each as U+FFFD, an id that matches
// no mapping without a problem. A customer_name or product_name, shown and
// never matched, has U+FFFD for each run of such bytes, in either format,
// so that every view of it shows the same name. A CSV row
// that cannot be split into columns (a stray quote) names its customer
// only when customer_id is the first column and the fault comes after
// it, on the row's own line; so does a row that splits into another number of columns than the header's
// (a separator not quoted in a name), when customer_id is the first column and
// the row a line of its own: nothing before the first column can shift
// it, and a record of one line swallowed no other row. A CSV field in
// quotes that runs over several lines and holds the separator is a bad row too,
// though the record has the header's number of columns: a quote opened
// in one row and closed by a stray one in a later row reads the rows
// between as that field's text, and the later row's columns as the first
// row's. Each line of such a record, and of a record over several lines
// that has another number of columns or does not parse (a quote left
// open that closes later, or never, where no field ends), is then read as
// the row it was written as: when customer_id is the first column and
// each line's first field can be told (no quote in it, none left open),
// each line fails the customer of its first column, whatever its number
// of columns (a blank line is no one's; a line that splits into the
// header's columns and names another period is only reported), and the
// other customers of the file are synced. When
// the row names no customer that can be trusted (it cannot be split into
// columns otherwise, a line such a record runs over has a first field
// that cannot be told, or its JSON object gives customer_id twice), it is
// marked Unreadable for any customer, and the daemon writes no line that
// pass: the row could be any customer's usage, and guessing its owner
// could bill one customer for another's. A row with an empty customer_id
// is usage that belongs to no customer (a Record with CustomerID ""), not
// a problem; a CSV row of blanks only (a spreadsheet's empty row, ",,,";
// spaces, a tab), whatever its number of columns, holds no one's usage and
// is only reported. Rows are summed per (customer, product) as they are
// read (source.Summer: what source.Sum returns for the rows, sorted, each
// sum's Where naming its first row), so that a file of 100,000 rows is
// never held row by row; the report says so with Summed. Several rows of
// one customer and product are a problem of that customer and product,
// naming the rows: Unreadable by default (DuplicateRowsRefuse), since a
// row pasted twice would bill twice, a notice with DuplicateRowsSum (a row
// per site). Rows of no customer add up without a problem.
//
//	src, err := file.New(file.Config{Path: "/var/lib/psa-sync/passwordboss.csv", Name: "passwordboss"})
//	if err != nil { ... }
//	rep, err := src.Fetch(ctx, source.Period{Year: 2026, Month: time.October})
//	if err != nil { ... } // unreadable file or bad header
//	for _, p := range rep.Problems {
//		fmt.Println(p) // usage.csv:14: quantity "x" is not a whole number
//	}
package file
