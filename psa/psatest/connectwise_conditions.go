package psatest

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// This file parses and evaluates ConnectWise "conditions" expressions:
// comparisons (= != <> < <= > >=, contains, like with % and _ wildcards, in
// (...), each optionally negated with not), and/or, not, parentheses, nested
// paths such as company/id, strings in double (or single) quotes with
// backslash escapes, numbers, true/false, null and dates in [...].

type cwTokKind int

const (
	cwTokEOF cwTokKind = iota
	cwTokIdent
	cwTokString
	cwTokNumber
	cwTokDate
	cwTokOp
	cwTokLParen
	cwTokRParen
	cwTokComma
)

type cwToken struct {
	kind cwTokKind
	text string
	pos  int
}

func cwTokenize(s string) ([]cwToken, error) {
	var toks []cwToken
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			toks = append(toks, cwToken{cwTokLParen, "(", i})
			i++
		case c == ')':
			toks = append(toks, cwToken{cwTokRParen, ")", i})
			i++
		case c == ',':
			toks = append(toks, cwToken{cwTokComma, ",", i})
			i++
		case c == '"' || c == '\'':
			quote := c
			start := i
			i++
			var b strings.Builder
			closed := false
			for i < len(s) {
				if s[i] == '\\' && i+1 < len(s) {
					b.WriteByte(s[i+1])
					i += 2
					continue
				}
				if s[i] == quote {
					closed = true
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			if !closed {
				return nil, fmt.Errorf("unterminated string starting at position %d", start)
			}
			toks = append(toks, cwToken{cwTokString, b.String(), start})
		case c == '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("unterminated date starting at position %d", i)
			}
			toks = append(toks, cwToken{cwTokDate, s[i+1 : i+end], i})
			i += end + 1
		case c == '=' || c == '<' || c == '>' || c == '!':
			start := i
			i++
			if i < len(s) && (s[i] == '=' || (c == '<' && s[i] == '>')) {
				i++
			}
			op := s[start:i]
			if op == "!" {
				return nil, fmt.Errorf("unexpected '!' at position %d", start)
			}
			toks = append(toks, cwToken{cwTokOp, op, start})
		case c == '-' || c >= '0' && c <= '9':
			start := i
			i++
			for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
				i++
			}
			toks = append(toks, cwToken{cwTokNumber, s[start:i], start})
		case c == '_' || unicode.IsLetter(rune(c)):
			start := i
			for i < len(s) && (s[i] == '_' || s[i] == '/' || s[i] >= '0' && s[i] <= '9' || unicode.IsLetter(rune(s[i]))) {
				i++
			}
			toks = append(toks, cwToken{cwTokIdent, s[start:i], start})
		default:
			return nil, fmt.Errorf("unexpected character %q at position %d", c, i)
		}
	}
	return append(toks, cwToken{cwTokEOF, "", len(s)}), nil
}

// cwExpr is a parsed conditions expression.
type cwExpr interface {
	eval(rec map[string]any) bool
}

type cwAnd struct{ l, r cwExpr }
type cwOr struct{ l, r cwExpr }
type cwNot struct{ e cwExpr }

func (e cwAnd) eval(r map[string]any) bool { return e.l.eval(r) && e.r.eval(r) }
func (e cwOr) eval(r map[string]any) bool  { return e.l.eval(r) || e.r.eval(r) }
func (e cwNot) eval(r map[string]any) bool { return !e.e.eval(r) }

// cwLit is a literal value.
type cwLit struct {
	kind cwTokKind // cwTokString, cwTokNumber, cwTokDate, or cwTokIdent for true/false/null
	str  string
	num  float64
	t    time.Time
	b    bool
	null bool
}

type cwCmp struct {
	path []string
	op   string // = != < <= > >= contains like in
	lits []cwLit
	re   *regexp.Regexp
}

type cwParser struct {
	toks   []cwToken
	pos    int
	fields func(path string) bool
}

// parseConditions parses a conditions expression; known reports whether a
// field path exists on the resource.
func parseConditions(s string, known func(path string) bool) (cwExpr, error) {
	toks, err := cwTokenize(s)
	if err != nil {
		return nil, err
	}
	p := &cwParser{toks: toks, fields: known}
	e, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != cwTokEOF {
		return nil, fmt.Errorf("unexpected %q at position %d", t.text, t.pos)
	}
	return e, nil
}

func (p *cwParser) peek() cwToken { return p.toks[p.pos] }
func (p *cwParser) next() cwToken {
	t := p.toks[p.pos]
	if t.kind != cwTokEOF {
		p.pos++
	}
	return t
}

func (p *cwParser) keyword(word string) bool {
	t := p.peek()
	if t.kind == cwTokIdent && strings.EqualFold(t.text, word) {
		p.pos++
		return true
	}
	return false
}

func (p *cwParser) or() (cwExpr, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.keyword("or") {
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = cwOr{l, r}
	}
	return l, nil
}

func (p *cwParser) and() (cwExpr, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.keyword("and") {
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = cwAnd{l, r}
	}
	return l, nil
}

func (p *cwParser) unary() (cwExpr, error) {
	if p.keyword("not") {
		e, err := p.unary()
		if err != nil {
			return nil, err
		}
		return cwNot{e}, nil
	}
	if p.peek().kind == cwTokLParen {
		p.next()
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		if t := p.next(); t.kind != cwTokRParen {
			return nil, fmt.Errorf("expected ')' at position %d", t.pos)
		}
		return e, nil
	}
	return p.comparison()
}

func (p *cwParser) comparison() (cwExpr, error) {
	t := p.next()
	if t.kind != cwTokIdent {
		return nil, fmt.Errorf("expected a field name at position %d, got %q", t.pos, t.text)
	}
	if p.fields != nil && !p.fields(t.text) {
		return nil, fmt.Errorf("unknown field %q at position %d", t.text, t.pos)
	}
	c := &cwCmp{path: strings.Split(t.text, "/")}
	negate := p.keyword("not")
	switch op := p.peek(); {
	case op.kind == cwTokOp && !negate:
		p.next()
		c.op = op.text
		if c.op == "<>" {
			c.op = "!="
		}
		lit, err := p.literal()
		if err != nil {
			return nil, err
		}
		c.lits = []cwLit{lit}
	case p.keyword("contains"), p.keyword("like"):
		c.op = strings.ToLower(op.text)
		lit, err := p.literal()
		if err != nil {
			return nil, err
		}
		if lit.kind != cwTokString {
			return nil, fmt.Errorf("%s needs a string at position %d", c.op, op.pos)
		}
		c.lits = []cwLit{lit}
		if c.op == "like" {
			c.re = likeRegexp(lit.str)
		}
	case p.keyword("in"):
		c.op = "in"
		if t := p.next(); t.kind != cwTokLParen {
			return nil, fmt.Errorf("expected '(' after in at position %d", t.pos)
		}
		for {
			lit, err := p.literal()
			if err != nil {
				return nil, err
			}
			c.lits = append(c.lits, lit)
			t := p.next()
			if t.kind == cwTokRParen {
				break
			}
			if t.kind != cwTokComma {
				return nil, fmt.Errorf("expected ',' or ')' at position %d", t.pos)
			}
		}
	default:
		return nil, fmt.Errorf("expected an operator after %q at position %d", t.text, op.pos)
	}
	if negate {
		return cwNot{c}, nil
	}
	return c, nil
}

func (p *cwParser) literal() (cwLit, error) {
	t := p.next()
	switch t.kind {
	case cwTokString:
		return cwLit{kind: cwTokString, str: t.text}, nil
	case cwTokNumber:
		n, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return cwLit{}, fmt.Errorf("bad number %q at position %d", t.text, t.pos)
		}
		return cwLit{kind: cwTokNumber, num: n}, nil
	case cwTokDate:
		tm, err := parseCWTime(strings.TrimSpace(t.text))
		if err != nil {
			return cwLit{}, fmt.Errorf("bad date [%s] at position %d", t.text, t.pos)
		}
		return cwLit{kind: cwTokDate, t: tm}, nil
	case cwTokIdent:
		switch strings.ToLower(t.text) {
		case "true", "false":
			return cwLit{kind: cwTokIdent, b: strings.EqualFold(t.text, "true")}, nil
		case "null":
			return cwLit{kind: cwTokIdent, null: true}, nil
		}
	}
	return cwLit{}, fmt.Errorf("expected a value at position %d, got %q", t.pos, t.text)
}

// likeRegexp turns a SQL like pattern (% and _ wildcards, [x] escapes) into
// a case-insensitive regexp.
func likeRegexp(pat string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("(?is)^")
	for i := 0; i < len(pat); i++ {
		switch c := pat[i]; c {
		case '%':
			b.WriteString(".*")
		case '_':
			b.WriteString(".")
		case '[':
			if end := strings.IndexByte(pat[i+1:], ']'); end >= 0 {
				b.WriteString(regexp.QuoteMeta(pat[i+1 : i+1+end]))
				i += end + 1
				continue
			}
			b.WriteString(regexp.QuoteMeta("["))
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

func lookupPath(rec map[string]any, path []string) any {
	var v any = rec
	for _, seg := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = nil
		for k, x := range m {
			if strings.EqualFold(k, seg) {
				v = x
				break
			}
		}
	}
	return v
}

func (c *cwCmp) eval(rec map[string]any) bool {
	v := lookupPath(rec, c.path)
	switch c.op {
	case "in":
		for _, l := range c.lits {
			if compareLit(v, l) == 0 {
				return true
			}
		}
		return false
	case "contains":
		s, ok := v.(string)
		return ok && strings.Contains(strings.ToLower(s), strings.ToLower(c.lits[0].str))
	case "like":
		s, ok := v.(string)
		return ok && c.re.MatchString(s)
	}
	l := c.lits[0]
	if l.null {
		isNull := v == nil || v == ""
		if c.op == "=" {
			return isNull
		}
		return c.op == "!=" && !isNull
	}
	r := compareLit(v, l)
	if r == cmpIncomparable {
		return c.op == "!="
	}
	switch c.op {
	case "=":
		return r == 0
	case "!=":
		return r != 0
	case "<":
		return r < 0
	case "<=":
		return r <= 0
	case ">":
		return r > 0
	case ">=":
		return r >= 0
	}
	return false
}

const cmpIncomparable = 99

// compareLit compares a record value with a literal: -1, 0, 1, or
// cmpIncomparable when the types do not match. Strings compare
// case-insensitively, as ConnectWise's SQL Server collation does.
func compareLit(v any, l cwLit) int {
	switch l.kind {
	case cwTokString:
		s, ok := v.(string)
		if !ok {
			return cmpIncomparable
		}
		return strings.Compare(strings.ToLower(s), strings.ToLower(l.str))
	case cwTokNumber:
		n, ok := v.(float64)
		if !ok {
			return cmpIncomparable
		}
		switch {
		case n < l.num:
			return -1
		case n > l.num:
			return 1
		}
		return 0
	case cwTokDate:
		s, ok := v.(string)
		if !ok {
			return cmpIncomparable
		}
		t, err := parseCWTime(s)
		if err != nil {
			return cmpIncomparable
		}
		return t.Compare(l.t)
	case cwTokIdent:
		if l.null {
			if v == nil {
				return 0
			}
			return cmpIncomparable
		}
		b, ok := v.(bool)
		if !ok {
			return cmpIncomparable
		}
		switch {
		case b == l.b:
			return 0
		case !b:
			return -1
		}
		return 1
	}
	return cmpIncomparable
}

// parseCWTime parses a ConnectWise date-time (yyyy-MM-ddTHH:mm:ssZ, with or
// without zone or time).
func parseCWTime(s string) (time.Time, error) {
	for _, l := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised date %q", s)
}

func formatCWTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }
