package query

import (
	"regexp/syntax"
	"unicode/utf8"
)

// RequiredLiterals returns substrings every match of the expression must
// contain, for the store to pre-filter on: the case-sensitive literals
// concatenated at the top level of the simplified expression (in
// "timeout after \d+ms", "timeout after " and "ms"). Anything under an
// alternation, a repetition that may be empty, or a case-folding flag
// contributes nothing, so the result never excludes a line the expression
// would match. Literals shorter than three bytes are dropped: they filter
// little and cost a scan each.
func RequiredLiterals(expr string) []string {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	re = re.Simplify()
	var out []string
	var walk func(r *syntax.Regexp)
	walk = func(r *syntax.Regexp) {
		switch r.Op {
		case syntax.OpLiteral:
			if r.Flags&syntax.FoldCase == 0 {
				s := string(r.Rune)
				if len(s) >= 3 && utf8.ValidString(s) {
					out = append(out, s)
				}
			}
		case syntax.OpConcat:
			for _, sub := range r.Sub {
				walk(sub)
			}
		case syntax.OpCapture:
			walk(r.Sub[0])
		case syntax.OpPlus:
			walk(r.Sub[0]) // at least once
		case syntax.OpRepeat:
			if r.Min >= 1 {
				walk(r.Sub[0])
			}
		}
	}
	walk(re)
	if len(out) > 4 {
		out = out[:4]
	}
	return out
}
