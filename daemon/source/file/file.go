package file

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/internal/jsondup"
	"github.com/psa-sync/terraform-provider-psa/internal/sizecap"
)

// Format is the encoding of a usage file.
type Format string

// The formats a usage file can have. FormatAuto picks one from the file name's
// extension: ".csv" is CSV, ".json" is JSON; anything else is an error.
const (
	FormatAuto Format = ""
	FormatCSV  Format = "csv"
	FormatJSON Format = "json"
)

// MaxSize bounds the usage file, which is read whole at every pass: 256
// MiB is millions of rows, far above any MSP's usage (100,000 rows are
// about 6 MiB), so that a path naming another file (a log, a disk image,
// /dev/zero) fails the pass with an error instead of taking all memory.
const MaxSize = 256 << 20

// DuplicateRows says what a file's rows of one customer and product, more
// than one, make.
type DuplicateRows string

// The values of DuplicateRows. DuplicateRowsSum, the default, adds them
// up, for a file of a row per site, tenant or sub-account (how usage files
// have been read from the first version on); each such sum is a notice in
// the log, the plan and check, and psa_sync_usage_repeated_rows counts
// them. DuplicateRowsRefuse fails the customer instead: for a file that
// holds one row per customer and product, where a second row can only be
// a row pasted twice or a sheet exported twice into one file, whose usage
// would bill twice; a customer that fails keeps its lines' last
// quantities and is alerted on.
const (
	DuplicateRowsRefuse DuplicateRows = "refuse"
	DuplicateRowsSum    DuplicateRows = "sum"
)

// DefaultName is the source name used when Config.Name is empty.
const DefaultName = "file"

// Column names, which are also the JSON keys.
const (
	colCustomerID   = "customer_id"
	colCustomerName = "customer_name"
	colProduct      = "product"
	colProductName  = "product_name"
	colQuantity     = "quantity"
	colPeriod       = "period"
)

var (
	knownColumns    = []string{colCustomerID, colCustomerName, colProduct, colProductName, colQuantity, colPeriod}
	requiredColumns = []string{colCustomerID, colProduct, colQuantity}
)

// Config configures a file source.
type Config struct {
	// Path is the usage file. It is read anew on every Fetch, so another
	// program can replace it between passes (write a temp file and rename).
	Path string
	// Format is the file's encoding; FormatAuto (the default) goes by the
	// extension.
	Format Format
	// Name is the source name the mapping export uses for this data, for
	// example "passwordboss"; "" means DefaultName.
	Name string
	// DuplicateRows says what rows of one customer and product make; ""
	// means DuplicateRowsSum.
	DuplicateRows DuplicateRows
}

// Source reads usage from a CSV or JSON file. It is safe for concurrent use.
type Source struct {
	path       string
	format     Format
	name       string
	duplicates DuplicateRows
	// readHook, unless nil, runs after the first bytes of the file are
	// read: a test's writer changes the file there.
	readHook func()
}

// ErrChanged is the error (under the one Fetch, Check and Describe
// return) of a usage file that changed while it was read.
var ErrChanged = errors.New("the usage file changed while it was read")

var (
	_ source.Source    = (*Source)(nil)
	_ source.Describer = (*Source)(nil)
)

// New returns a Source for cfg. It checks the configuration only; the file is
// opened by Fetch and Check.
func New(cfg Config) (*Source, error) {
	if cfg.Path == "" {
		return nil, errors.New("file: path is required")
	}
	f := cfg.Format
	if f == FormatAuto {
		switch strings.ToLower(filepath.Ext(cfg.Path)) {
		case ".csv":
			f = FormatCSV
		case ".json":
			f = FormatJSON
		default:
			return nil, fmt.Errorf("file: cannot tell the format of %q from its extension; set the format to csv or json", cfg.Path)
		}
	}
	if f != FormatCSV && f != FormatJSON {
		return nil, fmt.Errorf("file: unknown format %q (want csv or json)", cfg.Format)
	}
	name := cfg.Name
	if name == "" {
		name = DefaultName
	}
	dup := cfg.DuplicateRows
	if dup == "" {
		dup = DuplicateRowsSum
	}
	if dup != DuplicateRowsRefuse && dup != DuplicateRowsSum {
		return nil, fmt.Errorf("file: unknown duplicate_rows %q (want refuse or sum)", cfg.DuplicateRows)
	}
	return &Source{path: cfg.Path, format: f, name: name, duplicates: dup}, nil
}

// Name returns the source name (Config.Name, or "file").
func (s *Source) Name() string { return s.name }

// Path returns the file the source reads.
func (s *Source) Path() string { return s.path }

// Format returns the file's format (never FormatAuto).
func (s *Source) Format() Format { return s.format }

// Fetch reads the file and returns its usage for period p, summed per
// (customer, product) as the rows are read (Report.Summed; see
// source.Summer), so that the rows are not kept. Rows that
// cannot be used are skipped and listed in Report.Problems with their line
// number; a row whose period column is set and differs from p is such a row.
// A row that cannot be read is an Unreadable problem of the customer in its
// customer_id column, or of any customer when the row cannot be split into
// columns (unless customer_id is the first column and was read before the
// fault, see leadingField) or its JSON object gives customer_id twice, or
// its customer_id was lost by a spreadsheet (see lostIDError); a CSV
// record over several lines that a quote left open may have run over is a
// problem of each line's customer (see eachLine), or of any; a row whose
// customer_id is empty is usage of no customer, and one of another period
// is not this period's usage, whatever else is wrong with it, so neither
// is Unreadable.
// A zero p accepts every period. A file that cannot be read or whose header
// or structure is wrong is an error. A sum that does not fit in an int64 is
// an Unreadable problem after those of the rows, as source.Sum reports it.
func (s *Source) Fetch(ctx context.Context, p source.Period) (*source.Report, error) {
	rep := &source.Report{Source: s.name, Period: p, Summed: true}
	var sum source.Summer
	if _, err := s.read(ctx, p, sum.Grow, sum.Add, func(pr source.Problem) { rep.Problems = append(rep.Problems, pr) }); err != nil {
		return nil, err
	}
	rep.Problems = append(rep.Problems, s.repeats(&sum)...)
	var overflows []source.Problem
	rep.Records, overflows = sum.Result()
	rep.Problems = append(rep.Problems, overflows...)
	return rep, nil
}

// repeats returns a problem per sum of sum that adds up several rows of
// one customer and product: Unreadable for that customer and product
// under DuplicateRowsRefuse, a notice under DuplicateRowsSum. Rows of no
// customer are never billed, and add up without a problem.
func (s *Source) repeats(sum *source.Summer) []source.Problem {
	var prs []source.Problem
	sum.Repeated(func(r source.Record, rows int, more []string) {
		if r.Unassigned() {
			return
		}
		lines := r.Where + ", " + strings.Join(more, ", ")
		if rows > 1+len(more) {
			lines += fmt.Sprintf(" and %d more", rows-1-len(more))
		}
		pr := source.Problem{Where: r.Where, CustomerID: r.CustomerID, Product: r.Product, Repeated: true}
		if s.duplicates == DuplicateRowsSum {
			pr.Err = fmt.Errorf("customer %q has %d rows of product %q (%s), added up to %d (duplicate_rows: sum)", r.CustomerID, rows, r.Product, lines, r.Quantity)
		} else {
			pr.Unreadable = true
			pr.Err = fmt.Errorf("customer %q has %d rows of product %q (%s), which would add up to %d: a row pasted twice bills twice; "+
				"remove the repeated rows, or, if each row is usage of its own (a row per site), set duplicate_rows: sum", r.CustomerID, rows, r.Product, lines, r.Quantity)
		}
		prs = append(prs, pr)
	})
	return prs
}

// read parses the file and hands each usable row of period p to add, as a
// record, and each other row to skip, as a problem, in file order. It
// returns the number of rows. Before the first row, it tells grow (unless
// nil) how many rows the file can hold at most: its number of lines.
func (s *Source) read(ctx context.Context, p source.Period, grow func(int), add func(source.Record), skip func(source.Problem)) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	data, err := s.readFile()
	if err != nil {
		return 0, fmt.Errorf("file: reading usage: %w", err)
	}
	name := filepath.Base(s.path)
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	if bytes.HasPrefix(data, []byte("\xff\xfe")) || bytes.HasPrefix(data, []byte("\xfe\xff")) {
		return 0, fmt.Errorf("file: %s is UTF-16 text (Excel's \"Unicode Text\" saves that); save it as UTF-8 (\"CSV UTF-8\")", name)
	}
	data, codepage := windows1252(data)
	data = lineFeeds(data)
	if grow != nil {
		grow(bytes.Count(data, []byte("\n")) + 1)
	}
	notUTF8 := notUTF8Text(s.format, data)
	n := 0
	each := func(r row) {
		n++
		rec, err := r.record(p)
		if lost := (*lostIDError)(nil); notUTF8 != nil && errors.As(err, &lost) && !utf8.ValidString(lost.value) {
			lost.why, lost.fix = notUTF8.why, notUTF8.fix
		}
		if err != nil {
			skip(r.problem(err))
			return
		}
		if !r.escapedIDs {
			rec.Codepage = codepage
		}
		add(rec)
	}
	switch s.format {
	case FormatCSV:
		err = parseCSV(name, data, each)
	default:
		err = parseJSON(name, data, each)
	}
	return n, err
}

// readFile reads the usage file whole and fails when it changed while it
// was read. A file written in place (shell ">", curl -o, a script that
// truncates and rewrites it) holds only the rows written so far until its
// writer ends: read then, those rows would be billed as the period's usage,
// and the customers not yet written set to 0 (policies.missing_usage). The
// open file's size and modification time before and after the read, and
// the bytes read against that size, tell a writer that went on during the
// read. Not retried: a writer seen at work is likely still at it, and a
// second read right after could end in one of its pauses, which no check
// sees (nor does this one, for a writer stalled for the whole read); the
// pass fails, and the next one reads the file again. A file replaced by a
// rename meanwhile is no change: the open file is the old one, read whole.
func (s *Source) readFile() ([]byte, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r fs.File = f
	if s.readHook != nil {
		r = sizecap.OnFirstRead(f, 0, s.readHook)
	}
	data, err := sizecap.ReadOpenStable(r, s.path, MaxSize, "a usage file")
	var ce *sizecap.ChangedError
	if errors.As(err, &ce) {
		return nil, fmt.Errorf("%s: %w (%s): "+
			"a program writes it in place; it should write a temporary file in the same directory and rename it over %s, so that a pass never reads "+
			"it half written. Nothing of it was used; the next pass reads it again",
			s.path, ErrChanged, ce.Detail(), filepath.Base(s.path))
	}
	return data, err
}

// Check reads and parses the file. It fails when the file cannot be read,
// when a row cannot be read (a customer's, or anyone's: the pass would
// fail them), or when a customer has several rows of one product under
// DuplicateRowsRefuse, and then says how many rows were skipped and which
// first. Rows that are only reported (of another period, of no customer, a
// row of blanks) do not fail it: a file may hold several months.
func (s *Source) Check(ctx context.Context) error {
	_, err := s.Describe(ctx)
	return err
}

// Describe reads and parses the file and says how many rows it holds and how
// many were skipped, for example "usage.csv: 14 rows, 2 skipped (first:
// usage.csv:3: product is missing)". It fails as Check does, with that
// text (source.Describer): psa-syncd check said "ok" of a file whose rows
// fail customers at every pass.
func (s *Source) Describe(ctx context.Context) (string, error) {
	msg, failed, err := s.describe(ctx)
	if err == nil && failed {
		err = fmt.Errorf("file: %s", msg)
	}
	return msg, err
}

// describe reads the file and summarises it for Check and Describe: its
// rows, those skipped, and the products of a customer on several rows
// (see repeats), and whether Check fails (see there). The file's rows of every period
// are read: rows of one customer and product repeat only within a period
// column's value, and a row with no period counts in every period, as in
// the pass of each: it repeats a row of any period.
func (s *Source) describe(ctx context.Context) (msg string, failed bool, err error) {
	var first *source.Problem
	skipped, unreadable := 0, 0
	sums := map[string]*source.Summer{"": {}} // by period, as written
	var blanks []source.Record                // the rows with no period, so far
	n, err := s.read(ctx, source.Period{}, nil, func(r source.Record) {
		if r.Period == "" {
			blanks = append(blanks, r)
			for _, sum := range sums {
				sum.Add(r)
			}
			return
		}
		if sums[r.Period] == nil {
			// The rows with no period before it, in file order.
			sums[r.Period] = &source.Summer{}
			for _, b := range blanks {
				sums[r.Period].Add(b)
			}
		}
		sums[r.Period].Add(r)
	}, func(pr source.Problem) {
		if pr.Unreadable {
			unreadable++
		}
		if skipped++; first == nil {
			first = &pr
		}
	})
	if err != nil {
		return "", false, err
	}
	msg = fmt.Sprintf("%s: %d %s, %d skipped", filepath.Base(s.path), n, plural(n, "row", "rows"), skipped)
	if first != nil {
		msg += fmt.Sprintf(" (first: %s)", first)
	}
	if len(sums) > 1 {
		delete(sums, "") // its rows are in every other period's
	}
	var repeated []source.Problem
	seen := map[string]bool{} // rows with no period repeat in every period
	for _, p := range slices.Sorted(maps.Keys(sums)) {
		for _, pr := range s.repeats(sums[p]) {
			if !seen[pr.String()] {
				seen[pr.String()] = true
				repeated = append(repeated, pr)
			}
		}
	}
	if len(repeated) > 0 {
		msg += fmt.Sprintf(", %d %s on several rows (first: %s)", len(repeated),
			plural(len(repeated), "product of a customer", "products of customers"), repeated[0])
	}
	return msg, unreadable > 0 || len(repeated) > 0 && s.duplicates == DuplicateRowsRefuse, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// row is one row of the file before validation. Fields are trimmed text.
type row struct {
	where string
	// fields holds the row's columns. When err is set, it holds at most
	// the customer_id and the period, those of them that could be read
	// (see problem and record), and is nil when neither could.
	fields map[string]string
	err    error // set when the row could not even be split into fields
	// escapedIDs is set for a JSON row whose customer_id and product are
	// written in ASCII, any other character as a \u escape: no code page
	// was read into them, whatever the file's is (see read).
	escapedIDs bool
}

// errOtherPeriod marks a row of another period than the requested one.
var errOtherPeriod = errors.New("not the requested period")

// problem describes why the row was skipped, and whose usage it was.
func (r row) problem(err error) source.Problem {
	pr := source.Problem{Where: r.where, Err: err}
	if errors.Is(err, errOtherPeriod) {
		return pr
	}
	customer, known := r.fields[colCustomerID]
	if known && customer == "" {
		return pr // usage of no customer: reported, never billed
	}
	pr.Unreadable, pr.CustomerID, pr.Product = true, customer, r.fields[colProduct]
	if lost := (*lostIDError)(nil); errors.As(err, &lost) {
		pr.Product = "" // any product of the customer's
		if lost.column == colCustomerID {
			pr.CustomerID = "" // anyone's
		}
	}
	return pr
}

// lostIDError is the error of a row whose customer_id or product a
// spreadsheet wrote so that it matches no mapping, while it may be a mapped
// one: a number in scientific notation ("1.23457E+15" for
// 1234567890123456, the digits after the first few lost), or text in the
// Windows code page rather than UTF-8 ("Soci\xe9t\xe9"). Read as an unmapped
// id, the mapped customer or product it was would be billed without this
// usage (set to 0 by missing_usage: zero). Whose, or which product's,
// usage it is cannot be told.
type lostIDError struct {
	column, value string
	why, fix      string // what the spreadsheet did, and how to save the file
}

func (e *lostIDError) Error() string {
	what := "whose usage the row is"
	if e.column == colProduct {
		what = "which product the row is of"
	}
	return fmt.Sprintf("%s %q %s, so %s cannot be told; %s", e.column, e.value, e.why, what, e.fix)
}

// lostID returns the lostIDError of id, the row's column, or nil.
func lostID(column, id string) error {
	switch {
	case scientific(id):
		return &lostIDError{column: column, value: id, why: "is a number a spreadsheet wrote in scientific notation, its digits after the first few lost",
			fix: "format the column as text in the spreadsheet, and export the file again"}
	case !utf8.ValidString(id):
		return &lostIDError{column: column, value: id, why: `is not UTF-8 text (Excel's "CSV (Comma delimited)" writes the Windows code page) and matches no mapping`,
			fix: `save the file as "CSV UTF-8"`}
	}
	return nil
}

// scientific reports whether id is a number in the scientific notation a
// spreadsheet writes a long number in ("1.23457E+15"), which no vendor's
// id looks like.
func scientific(id string) bool {
	mantissa, exp, found := strings.Cut(strings.ToUpper(id), "E+")
	whole, frac, _ := strings.Cut(mantissa, ".")
	digits := func(s string) bool { return s != "" && strings.Trim(s, "0123456789") == "" }
	return found && len(whole) == 1 && digits(whole) && (frac == "" || digits(frac)) && digits(exp)
}

func (r row) record(p source.Period) (source.Record, error) {
	// The period first: a row of another period is not this period's
	// usage, whatever else is wrong with it, so it is only reported. A
	// period that does not parse says nothing about the row's period, so
	// the row stays a problem of its customer.
	per := r.fields[colPeriod]
	var perErr error
	if per != "" {
		rp, err := source.ParsePeriod(per)
		switch {
		case err != nil:
			perErr = fmt.Errorf("period %q is not YYYY-MM", per)
		case !p.IsZero() && rp != p:
			return source.Record{}, fmt.Errorf("period %s is %w %s", rp, errOtherPeriod, p)
		}
	}
	if r.err != nil {
		return source.Record{}, r.err
	}
	// A name is shown, never matched: one not in UTF-8 (of a file that
	// mixes code pages, so read as neither) is made valid here, once, so
	// that the status page, the API, the plan and the log show it alike,
	// as PostgreSQL would store it. An id keeps its bytes (see lostID).
	rec := source.Record{
		CustomerID:   r.fields[colCustomerID],
		CustomerName: strings.ToValidUTF8(r.fields[colCustomerName], "\uFFFD"),
		Product:      r.fields[colProduct],
		ProductName:  strings.ToValidUTF8(r.fields[colProductName], "\uFFFD"),
		Period:       per,
		Where:        r.where,
	}
	for _, c := range []string{colCustomerID, colProduct} {
		if err := lostID(c, r.fields[c]); err != nil {
			return rec, err
		}
	}
	if rec.Product == "" {
		return rec, errors.New("product is missing")
	}
	q := r.fields[colQuantity]
	if q == "" {
		return rec, errors.New("quantity is missing")
	}
	n, err := strconv.ParseInt(q, 10, 64)
	// ParseInt reports a range error before it reads the rest.
	whole := strings.TrimLeft(strings.TrimPrefix(strings.TrimPrefix(q, "+"), "-"), "0123456789") == ""
	switch {
	case errors.Is(err, strconv.ErrRange) && whole && !strings.HasPrefix(q, "-"):
		// A whole number: saying it is not one sends the reader looking
		// for a stray character.
		return rec, fmt.Errorf("quantity %s is more than %d", q, int64(math.MaxInt64))
	case errors.Is(err, strconv.ErrRange) && whole:
		return rec, fmt.Errorf("quantity %s is negative", q)
	case err != nil:
		return rec, fmt.Errorf("quantity %q is not a whole number", q)
	}
	if n < 0 {
		return rec, fmt.Errorf("quantity %d is negative", n)
	}
	rec.Quantity = n
	if perErr != nil {
		return rec, perErr
	}
	return rec, nil
}

// windows1252 returns data decoded from Windows-1252, and "Windows-1252",
// when it is not UTF-8 but is Windows-1252 text (none of the five bytes
// that code page leaves undefined) without a character in UTF-8 (see
// holdsUTF8); else data and "". Excel's "CSV (Comma
// delimited)" writes the Windows code page, Windows-1252 in Western
// Europe and the Americas: "Müller GmbH" as "M\xfcller GmbH", whose
// customer_id matches no mapping unless so decoded. Another code page (the
// Windows-1250 of Central Europe, a Mac's) decodes too, into other
// letters: the engine takes an id outside ASCII that then matches no
// mapping for a mapped one read otherwise (see source.Record.Codepage).
func windows1252(data []byte) ([]byte, string) {
	undefined := func(b byte) bool { return strings.IndexByte("\x81\x8d\x8f\x90\x9d", b) >= 0 }
	if utf8.Valid(data) || slices.ContainsFunc(data, undefined) || holdsUTF8(data) {
		return data, ""
	}
	text, err := charmap.Windows1252.NewDecoder().Bytes(data)
	if err != nil {
		return data, ""
	}
	return text, "Windows-1252"
}

// holdsUTF8 reports whether data holds a character outside ASCII in UTF-8:
// a file of UTF-8 rows and Windows-1252 rows (two exports pasted into one)
// cannot be decoded as one or the other, and Windows-1252 text rarely
// holds such a sequence ("Ã©" is é in UTF-8). A JSON \u escape is no
// UTF-8 text: it names its character in ASCII, in any code page. A JSON
// file of escapes and raw Windows-1252 text (a program that escapes every
// character outside ASCII, as Python's json.dumps does, and one that writes
// the Windows code page, into one file) is Windows-1252 text, its escapes
// read as the characters they name: "M\u00fcller" and "M\xfcller" are both
// Müller. A row whose ids are so escaped is no guess of a code page, and
// its record's Codepage is not set (see row.escapedIDs).
func holdsUTF8(data []byte) bool {
	for len(data) > 0 {
		r, n := utf8.DecodeRune(data)
		if n > 1 && r != utf8.RuneError {
			return true
		}
		data = data[n:]
	}
	return false
}

// notUTF8Text returns what an id not in UTF-8 is and how to save the
// file, for a file of format f whose text data is not UTF-8 where lostID's
// words (a CSV file in the Windows code page) do not fit; else nil:
//   - a file of UTF-8 text and text in another code page (two exports
//     pasted into one, one saved as "CSV UTF-8", the other as "CSV (Comma
//     delimited)"; or a JSON file that a program wrote from text of two
//     sources), naming the line of the first character of each. Such a
//     file is read as neither (see windows1252), and "not UTF-8" alone
//     sends its reader looking for a file in the Windows code page;
//   - a JSON file not in UTF-8, naming the line of its first such
//     character: JSON is UTF-8, and no spreadsheet wrote it.
func notUTF8Text(f Format, data []byte) *lostIDError {
	firstUTF8, firstOther := -1, -1
	for i := 0; i < len(data) && (firstUTF8 < 0 || firstOther < 0); {
		r, n := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && n == 1 && firstOther < 0:
			firstOther = i
		case r != utf8.RuneError && n > 1 && firstUTF8 < 0:
			firstUTF8 = i
		}
		i += n
	}
	line := func(i int) int { return bytes.Count(data[:i], []byte("\n")) + 1 }
	switch {
	case firstOther < 0 || firstUTF8 < 0 && f == FormatCSV:
		return nil
	case f == FormatCSV:
		return &lostIDError{
			why: fmt.Sprintf(`is not UTF-8 text and matches no mapping: the file mixes UTF-8 (first at line %d) and the Windows code page (first at line %d), `+
				`as two exports pasted into one, one saved as "CSV UTF-8" and one as "CSV (Comma delimited)", and cannot be read as either`, line(firstUTF8), line(firstOther)),
			fix: `save each export as "CSV UTF-8" and join them again`,
		}
	case firstUTF8 < 0:
		return &lostIDError{
			why: fmt.Sprintf(`is not UTF-8 text, as JSON must be, and matches no mapping: the program that wrote the file wrote another code page (first at line %d)`,
				line(firstOther)),
			fix: "have it write UTF-8",
		}
	}
	return &lostIDError{
		why: fmt.Sprintf(`is not UTF-8 text, as JSON must be, and matches no mapping: the file mixes UTF-8 (first at line %d) and another code page (first at line %d), `+
			`as text of two sources written into one file, and cannot be read as either`, line(firstUTF8), line(firstOther)),
		fix: "have the program that writes the file write UTF-8 only",
	}
}

// lineFeeds returns data with its line ends made line feeds, when they are
// carriage returns alone: in a file without a line feed, every carriage
// return is a line end. Excel's "CSV (Macintosh)" ends each line so, which
// the CSV reader does not take for a line end (the whole file would be one
// row), and neither the file's number of lines (the rows to make room for)
// nor a JSON row's line number would count them. Each becomes a line feed,
// one for one, so the line numbers stay the file's. One in a quoted CSV
// field (a line break in a cell) cannot be told from a line end, and is
// then one in a file of line feeds: a field over several lines, read and
// checked as such; in a JSON string, either is a syntax error.
func lineFeeds(data []byte) []byte {
	if bytes.IndexByte(data, '\n') >= 0 || bytes.IndexByte(data, '\r') < 0 {
		return data
	}
	return bytes.ReplaceAll(data, []byte("\r"), []byte("\n"))
}

// parseCSV reads the header and hands each row to each. Header problems (a
// missing required column, an unknown or repeated column) reject the whole
// file, because every row would be misread; a row that cannot be split into
// columns is a row with err set. The columns are separated by commas, or by
// the separator of Excel's "sep=" first line, or by ";" or tabs when the
// header is so separated (see separator). The lines end in LF or CR LF
// (see lineFeeds for those of CR alone).
func parseCSV(name string, data []byte, each func(row)) error {
	data, sep := separator(data)
	cr := csv.NewReader(bytes.NewReader(data))
	cr.Comma = sep
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return fmt.Errorf("file: %s: empty file, want a header row with %s", name, strings.Join(requiredColumns, ", "))
	}
	if err != nil {
		return fmt.Errorf("file: %s: reading header: %w", name, err)
	}
	// Line 1, or 2 after a "sep=" line.
	hl, _ := cr.FieldPos(0)
	cols := make([]string, len(header))
	seen := map[string]bool{}
	for i, h := range header {
		c := strings.ToLower(strings.TrimSpace(h))
		if c == "" {
			return fmt.Errorf("file: %s:%d: column %d of the header has no name (%s at the end of the header, or a column the spreadsheet "+
				"saved blank): remove it, or name it one of %s", name, hl, i+1, sepName(sep), strings.Join(knownColumns, ", "))
		}
		if !known(c) {
			return fmt.Errorf("file: %s:%d: unknown column %q (want %s)%s", name, hl, h, strings.Join(knownColumns, ", "), headerHint(h))
		}
		if seen[c] {
			return fmt.Errorf("file: %s:%d: column %q appears twice", name, hl, c)
		}
		seen[c] = true
		cols[i] = c
	}
	for _, c := range requiredColumns {
		if !seen[c] {
			return fmt.Errorf("file: %s:%d: column %q is missing from the header", name, hl, c)
		}
	}
	fields := make(map[string]string, len(cols))
	for {
		start := cr.InputOffset()
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				r := row{where: fmt.Sprintf("%s:%d", name, pe.StartLine), err: pe.Err}
				if pe.StartLine != pe.Line {
					// A quote opened in one row and not closed as a
					// field ends: the lines up to the fault may be rows
					// it swallowed, read as they were written.
					err := fmt.Errorf("%w at line %d, column %d; the row runs from line %d to line %d: "+
						"a quote left open may have swallowed the rows between", pe.Err, pe.Line, pe.Column, pe.StartLine, pe.Line)
					eachLine(name, pe.StartLine, data[start:cr.InputOffset()], cols, sep, err, each)
					continue
				}
				if id, ok := leadingField(data[start:], pe, sep); ok && cols[0] == colCustomerID {
					r.fields = map[string]string{colCustomerID: id}
				}
				each(r)
				continue
			}
			return fmt.Errorf("file: %s: %w", name, err)
		}
		line, _ := cr.FieldPos(0)
		where := name + ":" + strconv.Itoa(line)
		if !slices.ContainsFunc(rec, func(f string) bool { return strings.TrimSpace(f) != "" }) {
			// Blanks only (a spreadsheet's empty row, ",,,"; a line of
			// spaces, a tab), whatever its number of columns: no usage,
			// and no customer's, so it is only reported, as an empty
			// line is skipped, rather than fail every customer.
			each(row{where: where, fields: map[string]string{colCustomerID: ""}, err: errors.New("the row is empty: every column is blank")})
			continue
		}
		if len(rec) != len(cols) {
			r := row{where: where, err: fmt.Errorf("row has %d columns, the header has %d", len(rec), len(cols))}
			switch {
			case !oneLine(data[start:cr.InputOffset()]):
				// A quote opened in one row and closed by a stray one
				// in a later row, say: the lines between may be rows
				// it swallowed, read as they were written.
				last, _ := cr.FieldPos(len(rec) - 1)
				last += strings.Count(rec[len(rec)-1], "\n")
				r.err = fmt.Errorf("%w; it runs from line %d to line %d: a quote left open may have swallowed the rows between", r.err, line, last)
				eachLine(name, line, data[start:cr.InputOffset()], cols, sep, r.err, each)
				continue
			case cols[0] == colCustomerID:
				// A separator not quoted in a name, say: the columns after
				// it are shifted, but nothing comes before the first,
				// so the row is its customer's, and fails that customer
				// alone.
				r.fields = map[string]string{colCustomerID: strings.TrimSpace(rec[0])}
			}
			each(r)
			continue
		}
		if i := slices.IndexFunc(rec, func(f string) bool { return swallowed(f, sep) }); i >= 0 {
			// The header's number of columns, yet a quote opened in one
			// row may have closed in a later one: the rows between are
			// then text of this field, billed to no one, and the
			// columns after the quote are the later row's.
			first, _ := cr.FieldPos(i)
			eachLine(name, line, data[start:cr.InputOffset()], cols, sep, fmt.Errorf("the quoted %s field runs from line %d to line %d and holds %s: "+
				"a quote left open may have swallowed the rows between", cols[i], first, first+strings.Count(rec[i], "\n"), sepName(sep)), each)
			continue
		}
		// One map serves every row: each takes what it keeps from it.
		for i, c := range cols {
			fields[c] = strings.TrimSpace(rec[i])
		}
		each(row{where: where, fields: fields})
	}
}

// swallowed reports whether field, a field of a record with the header's
// number of columns, may hold other rows: it holds a line break and the
// separator sep. A quote at the start of a field, left open, runs on into
// the next rows until another row's stray quote closes it. The field then
// holds a separator, before or after its line break, whenever the record
// still has the header's number of columns: without one, two rows of the
// header's n columns joined would have 2n-1. A name written over several
// lines without a separator is read as it is.
func swallowed(field string, sep rune) bool {
	return strings.Contains(field, "\n") && strings.ContainsRune(field, sep)
}

// eachLine hands each a row per line of record, a CSV record over several
// lines that a quote left open may have run over (see swallowed), with err
// and what it says of the rows. The lines are read as the rows they were
// written as (see lineRows): each fails the customer of its first column,
// and the other customers are billed. When a line's customer cannot be
// told, the record is one row of any customer, at line. record is the
// record's input, with the blank lines the reader skipped before it; line
// is its first line's number; sep separates its columns.
func eachLine(name string, line int, record []byte, cols []string, sep rune, err error, each func(row)) {
	const fix = "; close the quote, or put the field on one line"
	rows, ok := lineRows(name, line, record, cols, sep)
	if !ok {
		each(row{where: fmt.Sprintf("%s:%d", name, line), err: fmt.Errorf("%w, so whose usage they are cannot be told"+fix, err)})
		return
	}
	err = fmt.Errorf("%w, so the customer of each of those lines is not synced this pass"+fix, err)
	for _, r := range rows {
		r.err = err
		each(r)
	}
}

// lineRows reads the lines of record (see eachLine) as the rows they were
// written as: each line split on its own, its customer is its first
// column, when customer_id is the header's first column and the line's
// first field can be told (see firstField), whatever number of columns the
// line has, as for a row of one line. Every line of the record is thus
// the row of a customer that fails, or text of a field of an earlier line
// of the record, whose customer fails. A line's period is kept when it
// splits into the header's columns, so that a row of another period is
// only reported; on the first line, whose last field runs on to the next
// line, when the period comes before that field. A line of blanks only is
// no one's row. It returns one row per line with its customer_id (err is
// for the caller to set), or false when a customer cannot be told.
func lineRows(name string, line int, record []byte, cols []string, sep rune) ([]row, bool) {
	if cols[0] != colCustomerID {
		return nil, false
	}
	period := slices.Index(cols, colPeriod)
	var rows []row
	lines := strings.Split(string(bytes.TrimRight(bytes.TrimLeft(record, "\r\n"), "\r\n")), "\n")
	for k, l := range lines {
		l = strings.TrimSuffix(l, "\r")
		if strings.TrimSpace(l) == "" {
			continue
		}
		id, ok := firstField(l, sep)
		if !ok {
			return nil, false
		}
		r := row{where: fmt.Sprintf("%s:%d", name, line+k), fields: map[string]string{colCustomerID: id}}
		lr := csv.NewReader(strings.NewReader(l))
		lr.Comma = sep
		lr.FieldsPerRecord = -1
		lr.LazyQuotes = true // the stray quote that closed the field reads as text
		if fields, err := lr.Read(); err == nil && period >= 0 &&
			(k > 0 && len(fields) == len(cols) || k == 0 && period < len(fields)-1) {
			r.fields[colPeriod] = strings.TrimSpace(fields[period])
		}
		rows = append(rows, r)
	}
	return rows, true
}

// firstField returns the first field of line, a line of a CSV file read on
// its own, its columns separated by sep, when it can be told: plain text
// without a quote, or a field in quotes closed where it ends, at a
// separator or the line's end, without a separator in it. A quote in plain
// text, or one left open, may be the one that opened or closed a field over
// several lines: the line's first field is then text of another row's
// field, or this row's runs on.
func firstField(line string, sep rune) (string, bool) {
	rest, quoted := strings.CutPrefix(line, `"`)
	if !quoted {
		field, _, _ := strings.Cut(line, string(sep))
		if strings.Contains(field, `"`) {
			return "", false
		}
		return strings.TrimSpace(field), true
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(rest, '"')
		if i < 0 {
			return "", false
		}
		b.WriteString(rest[:i])
		rest = rest[i+1:]
		switch {
		case strings.HasPrefix(rest, `"`):
			b.WriteByte('"')
			rest = rest[1:]
		case rest == "" || strings.HasPrefix(rest, string(sep)):
			if strings.ContainsRune(b.String(), sep) {
				return "", false
			}
			return strings.TrimSpace(b.String()), true
		default:
			return "", false
		}
	}
}

// oneLine reports whether record, the input of one CSV record with the
// blank lines the reader skipped before it, is a line of its own.
func oneLine(record []byte) bool {
	record = bytes.TrimLeft(record, "\r\n")
	return !bytes.Contains(bytes.TrimRight(record, "\r\n"), []byte("\n"))
}

// leadingField returns the first field of a CSV record that failed to
// parse (a stray quote in a customer name, say), when the record is one
// line, that field is plain text (no quote) and the fault comes after it:
// then it is the field as written, whatever is wrong later in the line. As
// the first column, nothing before it can shift it, so the row's customer
// is known and fails alone rather than every customer of the file. rest is
// the input from where the record's read began; sep separates its columns.
func leadingField(rest []byte, pe *csv.ParseError, sep rune) (string, bool) {
	if pe.StartLine != pe.Line {
		return "", false
	}
	rest = bytes.TrimLeft(rest, "\r\n") // the blank lines the reader skipped
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	field, _, found := bytes.Cut(line, []byte(string(sep)))
	if !found || bytes.ContainsRune(field, '"') || pe.Column <= len(field)+1 {
		return "", false
	}
	return strings.TrimSpace(string(field)), true
}

// separator returns the separator of the CSV file data and the data to
// read with it. Excel separates the columns of a CSV file with the list
// separator of the computer's region settings: ";" where a comma is the
// decimal separator. Its "sep=;" first line (or "sep=," or "sep=" and a
// tab; in quotes too; followed by more of that separator only, see
// sepLine) names the separator; the data returned then starts at the end of
// that line, so that the reader skips it as a blank line and counts the
// lines of the file. Otherwise a header line without a comma whose first
// column, split on ";" or a tab, is a known one is so separated: a header
// of commas has one, and a column name never holds ";" or a tab, so
// neither is taken for another. Anything else is read with commas, and a
// header of another separator is refused by its unknown column.
func separator(data []byte) ([]byte, rune) {
	first, _, _ := bytes.Cut(data, []byte("\n"))
	line := bytes.ToLower(bytes.TrimSuffix(first, []byte("\r")))
	if s, ok := sepLine(line); ok {
		return data[len(first):], s
	}
	header, _, _ := bytes.Cut(bytes.TrimLeft(data, "\r\n"), []byte("\n"))
	if bytes.ContainsRune(header, ',') {
		return data, ','
	}
	for _, sep := range []rune{';', '\t'} {
		hr := csv.NewReader(bytes.NewReader(header))
		hr.Comma = sep
		hr.LazyQuotes = true
		if cols, err := hr.Read(); err == nil && len(cols) > 1 && known(strings.ToLower(strings.TrimSpace(cols[0]))) {
			return data, sep
		}
	}
	return data, ','
}

// sepLine returns the separator that line, in lower case, names if it is
// Excel's separator line: "sep=;", or "sep=;" in quotes (a writer that
// quotes a field holding a separator), followed by nothing or by more of
// that separator only. A user who types sep=; into cell A1 and saves the
// sheet as CSV of ";" gets the other columns of that row after it, empty:
// sep=;;;; or "sep=;";;;. Anything else after it (sep=;,,, a sheet saved
// with another separator) is not taken for a separator line.
func sepLine(line []byte) (rune, bool) {
	var s byte
	var rest []byte
	if q, ok := bytes.CutPrefix(line, []byte(`"sep=`)); ok && len(q) > 1 && q[1] == '"' {
		s, rest = q[0], q[2:]
	} else if q, ok := bytes.CutPrefix(line, []byte("sep=")); ok && len(q) > 0 {
		s, rest = q[0], q[1:]
	} else {
		return 0, false
	}
	if !bytes.ContainsRune([]byte(",;\t"), rune(s)) || len(bytes.Trim(rest, string(s))) > 0 {
		return 0, false
	}
	return rune(s), true
}

// sepName names the separator sep in a message.
func sepName(sep rune) string {
	switch sep {
	case ',':
		return "a comma"
	case '\t':
		return "a tab"
	}
	return `a "` + string(sep) + `"`
}

// headerHint tells, for a column name h the header does not know, the
// spreadsheet export that wrote such a header, and how to save the file
// instead, or returns "". A spreadsheet export is how most usage files are
// made, and its settings, not a misspelt column, give these headers.
func headerHint(h string) string {
	c := strings.ToLower(strings.TrimSpace(h))
	separated := func(sep string) bool {
		f, _, found := strings.Cut(c, sep)
		return found && known(strings.TrimSpace(f))
	}
	switch {
	case len(h) > 4 && strings.HasPrefix(strings.ToLower(h), "sep=") && strings.ContainsRune(",;\t", rune(h[4])):
		// Not a separator line by sepLine: other characters follow
		// it, a sheet saved with another separator (sep=;,,,).
		return `: the first line is Excel's separator line, naming ` + sepName(rune(h[4])) + `, but followed by other characters than that ` +
			`separator (a cell "sep=" of a sheet saved with another separator); remove that line, or save the sheet with the separator it names`
	case strings.HasPrefix(c, "sep="):
		return `: the first line is Excel's separator line, for another separator than a comma, ";" or a tab; remove it, and separate the columns with commas`
	case strings.Contains(h, "\r"):
		// A file of carriage returns alone is read (see lineFeeds): this
		// one has a line feed somewhere too.
		return `: the lines end in a carriage return alone (Excel's "CSV (Macintosh)"), and the file holds a line feed too ` +
			`(a line break in a cell), so where a line ends cannot be told; save the file as "CSV UTF-8", whose lines end in CR LF`
	case separated(","):
		// Read with the separator of a "sep=" line.
		return `: the columns are separated by commas, not by the separator that the first line ("sep=") names; remove that line`
	case separated(";"), separated("\t"):
		// A header of ";" or tabs is read so (see separator), unless
		// it holds a comma too.
		return `: the columns are separated by ";" or tabs, but the header holds a comma too, so which one separates them cannot be told; ` +
			`remove the comma from the header`
	}
	return ""
}

func known(c string) bool {
	for _, k := range knownColumns {
		if c == k {
			return true
		}
	}
	return false
}

// parseJSON reads an array of objects, or an object {"records": [...]}, and
// hands each object to each as a row. Each object's line number is where
// its opening brace is. An object with an unknown key, a key given twice,
// or a value of the wrong type, is a problem for that row only.
func parseJSON(name string, data []byte, each func(row)) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("file: %s: %w", name, jsonErr(data, err))
	}
	switch tok {
	case json.Delim('['):
		if err := jsonRows(name, data, dec, each); err != nil {
			return err
		}
	case json.Delim('{'):
		// The {"records": [...]} form.
		found := false
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return fmt.Errorf("file: %s: %w", name, jsonErr(data, err))
			}
			if key != "records" {
				return fmt.Errorf("file: %s:%d: unknown key %q (want \"records\")", name, lineAt(data, dec.InputOffset()), key)
			}
			if found {
				return fmt.Errorf("file: %s: key \"records\" appears twice", name)
			}
			found = true
			if tok, err = dec.Token(); err != nil {
				return fmt.Errorf("file: %s: %w", name, jsonErr(data, err))
			}
			if tok != json.Delim('[') {
				return fmt.Errorf("file: %s: \"records\" must be an array of objects", name)
			}
			if err := jsonRows(name, data, dec, each); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil { // the closing brace
			return fmt.Errorf("file: %s: %w", name, jsonErr(data, err))
		}
		if !found {
			return fmt.Errorf("file: %s: the object has no \"records\" array", name)
		}
	default:
		return fmt.Errorf("file: %s: want an array of records or an object with a \"records\" array", name)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("file: %s:%d: unexpected data after the records", name, lineAt(data, valueStart(data, dec.InputOffset())))
	}
	return nil
}

// jsonRows reads array elements up to and including the closing bracket.
func jsonRows(name string, data []byte, dec *json.Decoder, each func(row)) error {
	// The rows come in order: each one's line is counted on from the
	// last one's, not from the start of the file again.
	line, counted := 1, int64(0)
	for dec.More() {
		start := valueStart(data, dec.InputOffset())
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("file: %s: %w", name, jsonErr(data, err))
		}
		line += bytes.Count(data[counted:start], []byte("\n"))
		counted = start
		r := jsonRow(raw, line)
		r.where = fmt.Sprintf("%s:%d", name, line)
		each(r)
	}
	if _, err := dec.Token(); err != nil { // the closing bracket
		return fmt.Errorf("file: %s: %w", name, jsonErr(data, err))
	}
	return nil
}

// jsonRow reads the row raw, which starts on line line of the file.
func jsonRow(raw json.RawMessage, line int) row {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return row{err: errors.New("record is not a JSON object")}
	}
	// A key given twice: json.Unmarshal kept its last value, and another
	// reader (or the person who wrote the file) may go by the first, so
	// neither counts. The object has more keys than the map only then.
	var repeated []jsondup.Dup
	if keyCount(raw) > len(obj) {
		for _, d := range jsondup.Find(raw) {
			if len(d.Path) == 0 && !slices.ContainsFunc(repeated, func(r jsondup.Dup) bool { return r.Key == d.Key }) {
				repeated = append(repeated, d)
			}
		}
	}
	isRepeated := func(k string) bool {
		return slices.ContainsFunc(repeated, func(d jsondup.Dup) bool { return d.Key == k })
	}
	r := row{fields: make(map[string]string, len(obj))}
	bad := func(err error) row {
		// Keep the customer and the period, when they can be read, so
		// that the problem holds that customer only, and is only
		// reported when the row is of another period. A repeated
		// customer_id is not kept: the problem is then anyone's.
		r := row{err: err}
		for _, k := range []string{colCustomerID, colPeriod} {
			v, ok := obj[k]
			if !ok || isRepeated(k) {
				continue
			}
			if s, err := jsonScalar(v); err == nil {
				if r.fields == nil {
					r.fields = map[string]string{}
				}
				r.fields[k] = strings.TrimSpace(s)
			}
		}
		return r
	}
	if len(repeated) > 0 {
		d := repeated[0]
		if i := slices.IndexFunc(repeated, func(d jsondup.Dup) bool { return d.Key == colCustomerID }); i >= 0 {
			d = repeated[i]
		}
		msg := fmt.Sprintf("key %q appears twice (again at line %d)", d.Key, line+bytes.Count(raw[:d.Offset], []byte("\n")))
		if d.Key == colCustomerID {
			msg += ", so whose usage the row is cannot be told"
		}
		if len(repeated) > 1 {
			msg += fmt.Sprintf(", and %d more %s", len(repeated)-1, plural(len(repeated)-1, "key", "keys"))
		}
		return bad(fmt.Errorf("%s: JSON readers differ on which one counts, so remove one", msg))
	}
	for k, v := range obj {
		if !known(k) {
			return bad(fmt.Errorf("unknown key %q", k))
		}
		s, err := jsonScalar(v)
		if err != nil {
			return bad(fmt.Errorf("%s: %w", k, err))
		}
		r.fields[k] = strings.TrimSpace(s)
	}
	r.escapedIDs = !slices.ContainsFunc([]string{colCustomerID, colProduct}, func(k string) bool {
		return slices.ContainsFunc(obj[k], func(c byte) bool { return c >= utf8.RuneSelf })
	})
	return r
}

// keyCount counts the keys of raw, a valid JSON object, repeats included:
// the colons outside strings and nested values. It tells cheaply whether
// jsondup.Find, which is slower, needs to look for the repeats.
func keyCount(raw []byte) int {
	n, depth := 0, 0
	inString, escaped := false, false
	for _, c := range raw {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		case c == ':' && depth == 1:
			n++
		}
	}
	return n
}

// jsonScalar returns a string's value, a number's literal text (so 2.5 is
// reported as not a whole number rather than rounded), or "" for null.
func jsonScalar(v json.RawMessage) (string, error) {
	v = bytes.TrimSpace(v)
	switch {
	case len(v) == 0 || string(v) == "null":
		return "", nil
	case v[0] == '"' && !utf8.Valid(v):
		return jsonBytes(v)
	case v[0] == '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", err
		}
		return s, nil
	case v[0] == '-' || (v[0] >= '0' && v[0] <= '9'):
		return string(v), nil
	default:
		return "", errors.New("want a string or a number")
	}
}

// jsonBytes returns the value of v, a JSON string that holds bytes that
// are not UTF-8, with those bytes kept as they are, as the CSV reader keeps
// them. json.Unmarshal reads each as U+FFFD: "M\xfcller" (a file that
// cannot be read as Windows-1252, see windows1252) would be the id
// "M\uFFFDller", which matches no mapping and fails nothing, and the mapped
// "Müller" would be billed without the row's usage; so kept, lostID tells
// that the row's id was lost. Such a byte never falls inside an escape
// (the string would not parse), so the text between two of them is a JSON
// string of its own.
func jsonBytes(v json.RawMessage) (string, error) {
	var b strings.Builder
	rest := v[1 : len(v)-1]
	for len(rest) > 0 {
		i := 0
		for i < len(rest) {
			r, n := utf8.DecodeRune(rest[i:])
			if r == utf8.RuneError && n == 1 {
				break
			}
			i += n
		}
		var s string
		if err := json.Unmarshal(slices.Concat([]byte(`"`), rest[:i], []byte(`"`)), &s); err != nil {
			return "", err
		}
		b.WriteString(s)
		if i < len(rest) {
			b.WriteByte(rest[i])
			i++
		}
		rest = rest[i:]
	}
	return b.String(), nil
}

// valueStart skips the whitespace and comma between the decoder's offset and
// the next value.
func valueStart(data []byte, off int64) int64 {
	for off < int64(len(data)) {
		switch data[off] {
		case ' ', '\t', '\r', '\n', ',':
			off++
		default:
			return off
		}
	}
	return off
}

// lineAt returns the 1-based line number of byte offset off.
func lineAt(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	return bytes.Count(data[:off], []byte("\n")) + 1
}

// jsonErr adds a line number to JSON syntax errors.
func jsonErr(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("line %d: %w", lineAt(data, se.Offset), err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("unexpected end of JSON")
	}
	return err
}
