//! SQL statement text as pgaudit logs it: redacted for display (no literal
//! value is ever shown or stored), normalized and hashed to compare with an
//! approved migration script, split into statements when it is a script, and
//! read for the `COPY ... TO` exports that take data out of the database.
//!
//! One hand-written lexer with PostgreSQL's rules (string and dollar-quoted
//! literals, quoted identifiers, nested comments) serves every function, so
//! they never disagree on where a literal ends. The text is untrusted: nothing
//! here panics, and an unterminated literal or comment runs to the end of the
//! text rather than leak its tail as if it were code.

use sha2::{Digest, Sha256};

/// Statement text with every literal replaced by `?` and comments dropped, whitespace collapsed: what is shown and
/// stored by default.
pub fn redact(sql: &str) -> String {
    render(Tokens::new(sql), true)
}

/// Comments dropped, runs of whitespace outside literals and quoted identifiers collapsed to one space, trimmed,
/// trailing `;` removed: the form hashed and compared.
pub fn normalize(sql: &str) -> String {
    render(Tokens::new(sql), false)
}

/// sha256 (lower-case hex) of `normalize(sql)`.
pub fn sha256(sql: &str) -> String {
    crate::pglog::digest(normalize(sql).as_bytes())
}

/// The statements of a script, each normalized, in order, empty ones skipped (split on `;` outside literals, quoted
/// identifiers, comments and dollar quotes).
pub fn split_script(script: &str) -> Vec<String> {
    let mut tokens = Tokens::new(script).peekable();
    let mut statements = Vec::new();
    while tokens.peek().is_some() {
        let statement = render(tokens.by_ref().take_while(|&(kind, _)| kind != Kind::Semicolon), false);
        if !statement.is_empty() {
            statements.push(statement);
        }
    }
    statements
}

/// The identity of a script (an approved migration): sha256 of its statements,
/// each normalized and followed by `;` and a newline. Layout and comments do not
/// change it; any statement's text does.
pub fn script_sha256(statements: &[String]) -> String {
    let mut h = Sha256::new();
    for s in statements {
        h.update(normalize(s).as_bytes());
        h.update(b";\n");
    }
    hex::encode(h.finalize())
}

/// A COPY statement's direction and what it reads or writes; `None` when `sql` is not a COPY.
pub fn copy(sql: &str) -> Option<Copy> {
    let mut t = Tokens::new(sql).filter(|&(kind, _)| !matches!(kind, Kind::Space | Kind::Comment)).peekable();
    if !is_word(t.next()?, "copy") {
        return None;
    }
    let table = if t.next_if_eq(&(Kind::Punct, "(")).is_some() {
        skip_parens(&mut t);
        None
    } else {
        // `binary` is a keyword, so a table of that name would be quoted: unquoted, it is the old `COPY BINARY t`.
        t.next_if(|&token| is_word(token, "binary"));
        let mut name = ident(t.next()?)?;
        while t.next_if_eq(&(Kind::Punct, ".")).is_some() {
            name.push('.');
            name.push_str(&ident(t.next()?)?);
        }
        if t.next_if_eq(&(Kind::Punct, "(")).is_some() {
            skip_parens(&mut t);
        }
        Some(name)
    };
    let direction = match t.next()? {
        token if is_word(token, "to") => CopyDirection::To,
        token if is_word(token, "from") => CopyDirection::From,
        _ => return None,
    };
    let endpoint = match t.next()? {
        token if is_word(token, "stdout") => CopyEndpoint::Stdout,
        token if is_word(token, "stdin") => CopyEndpoint::Stdin,
        token if is_word(token, "program") => CopyEndpoint::Program(string_value(t.next()?)?),
        token => CopyEndpoint::File(string_value(token)?),
    };
    Some(Copy { direction, table, endpoint })
}

/// What a COPY statement moves, and between which table (or query) and which endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// TO (an export) or FROM (an import).
    pub direction: CopyDirection,
    /// The table as written (`schema.table`, quoted parts unquoted and exact, unquoted parts folded to lower case), or
    /// `None` for `COPY (query) TO`.
    pub table: Option<String>,
    /// Where it goes or comes from.
    pub endpoint: CopyEndpoint,
}

/// Which way a COPY moves rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyDirection {
    /// `COPY ... TO`: rows leave the database (an export).
    To,
    /// `COPY ... FROM`: rows enter the database (an import).
    From,
}

/// The other end of a COPY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyEndpoint {
    /// `TO STDOUT`: the rows go to the client.
    Stdout,
    /// `FROM STDIN`: the rows come from the client.
    Stdin,
    /// A file on the database server, its path as written (a path is not a data value, so it is kept).
    File(String),
    /// `PROGRAM`: a shell command run on the database server, as written.
    Program(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Word,
    QuotedIdent,
    Literal,
    Number,
    Param,
    Punct,
    Space,
    Comment,
    Semicolon,
}

/// A token and its exact text, a slice of the statement.
type Token<'a> = (Kind, &'a str);

/// The tokens of a statement, in order; their texts concatenate back to the whole statement.
struct Tokens<'a> {
    sql: &'a str,
    pos: usize,
}

impl<'a> Tokens<'a> {
    fn new(sql: &'a str) -> Self {
        Tokens { sql, pos: 0 }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let rest = self.sql.get(self.pos..)?;
        let (kind, len) = lex(rest)?;
        // Lengths always end on a char boundary past the start; if one ever did not, hiding the rest beats a panic
        // or an endless loop.
        let token = match rest.get(..len) {
            Some(text) if !text.is_empty() => (kind, text),
            _ => (Kind::Literal, rest),
        };
        self.pos += token.1.len();
        Some(token)
    }
}

/// The kind and byte length of the token `s` starts with; `None` when `s` is empty.
fn lex(s: &str) -> Option<(Kind, usize)> {
    let mut chars = s.chars();
    let c = chars.next()?;
    let (c2, c3) = (chars.next(), chars.next());
    Some(match (c, c2) {
        (c, _) if is_space(c) => (Kind::Space, run_end(s, 0, is_space)),
        ('-', Some('-')) => (Kind::Comment, s.find(['\n', '\r']).unwrap_or(s.len())),
        ('/', Some('*')) => (Kind::Comment, block_comment_end(s)),
        (';', _) => (Kind::Semicolon, 1),
        ('\'', _) => (Kind::Literal, close(s, 0, '\'', false).unwrap_or(s.len())),
        ('"', _) => quoted_ident(s, 0),
        ('e' | 'E', Some('\'')) => (Kind::Literal, close(s, 1, '\'', true).unwrap_or(s.len())),
        ('n' | 'N' | 'b' | 'B' | 'x' | 'X', Some('\'')) => (Kind::Literal, close(s, 1, '\'', false).unwrap_or(s.len())),
        ('u' | 'U', Some('&')) if c3 == Some('\'') => (Kind::Literal, close(s, 2, '\'', false).unwrap_or(s.len())),
        ('u' | 'U', Some('&')) if c3 == Some('"') => quoted_ident(s, 2),
        ('$', Some(d)) if d.is_ascii_digit() => (Kind::Param, run_end(s, 1, |c| c.is_ascii_digit())),
        ('$', _) => dollar_quote_end(s).map_or((Kind::Punct, 1), |end| (Kind::Literal, end)),
        (d, _) if d.is_ascii_digit() => (Kind::Number, number_end(s)),
        ('.', Some(d)) if d.is_ascii_digit() => (Kind::Number, number_end(s)),
        (c, _) if is_ident_start(c) => (Kind::Word, run_end(s, 0, is_ident_char)),
        (c, _) => (Kind::Punct, c.len_utf8()),
    })
}

/// PostgreSQL's whitespace; other Unicode spaces are identifier characters to it.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_ident_char(c: char) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == '$'
}

/// The byte offset of the first char at or after `from` that is not `f`, or the length of `s`.
fn run_end(s: &str, from: usize, f: impl Fn(char) -> bool) -> usize {
    s.char_indices().find(|&(i, c)| i >= from && !f(c)).map_or(s.len(), |(i, _)| i)
}

/// The end of the quoted text whose opening `quote` is at byte `open` (after any ASCII prefix); a doubled quote is
/// one quote, and so is a backslash-escaped one when `backslash`; `None` when it never closes.
fn close(s: &str, open: usize, quote: char, backslash: bool) -> Option<usize> {
    let mut chars = s.char_indices().skip_while(|&(i, _)| i <= open).peekable();
    while let Some((i, c)) = chars.next() {
        if backslash && c == '\\' {
            chars.next();
        } else if c == quote && chars.next_if(|&(_, c)| c == quote).is_none() {
            return Some(i + quote.len_utf8());
        }
    }
    None
}

/// An unterminated quoted identifier is no identifier: it may swallow a literal, so it is hidden like one.
fn quoted_ident(s: &str, open: usize) -> (Kind, usize) {
    close(s, open, '"', false).map_or((Kind::Literal, s.len()), |end| (Kind::QuotedIdent, end))
}

/// The end of the block comment `s` starts with; comments nest in PostgreSQL.
fn block_comment_end(s: &str) -> usize {
    let (mut depth, mut i) = (0usize, 0);
    while let Some(pair) = s.as_bytes().get(i..i + 2) {
        match pair {
            b"/*" => depth += 1,
            b"*/" => depth = depth.saturating_sub(1),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
        if depth == 0 {
            return i;
        }
    }
    s.len()
}

/// The end of the dollar-quoted string `s` starts with (to the end when it never closes), or `None` when the `$` does
/// not open one.
fn dollar_quote_end(s: &str) -> Option<usize> {
    let tag_end = run_end(s, 1, |c| is_ident_start(c) || c.is_ascii_digit());
    let delimiter = s.get(..tag_end + 1).filter(|d| d.ends_with('$'))?;
    let body = s.get(delimiter.len()..)?;
    Some(body.find(delimiter).map_or(s.len(), |i| delimiter.len() + i + delimiter.len()))
}

/// The end of the number `s` starts with: integer, decimal, exponent, or `0x`/`0o`/`0b` with `_` separators.
fn number_end(s: &str) -> usize {
    let digits = |from: usize| run_end(s, from, |c| c.is_ascii_digit() || c == '_');
    let at = |i: usize| s.get(i..).unwrap_or("");
    if let [b'0', b'x' | b'X' | b'o' | b'O' | b'b' | b'B', d, ..] = s.as_bytes()
        && d.is_ascii_hexdigit()
    {
        return run_end(s, 2, |c| c.is_ascii_hexdigit() || c == '_');
    }
    let mut end = digits(0);
    if at(end).starts_with('.') && !at(end).starts_with("..") {
        end = digits(end + 1);
    }
    if let [b'e' | b'E', rest @ ..] = at(end).as_bytes() {
        let sign = usize::from(matches!(rest.first(), Some(b'+' | b'-')));
        if rest.get(sign).is_some_and(u8::is_ascii_digit) {
            end = digits(end + 1 + sign);
        }
    }
    end
}

/// Tokens back into text: comments and whitespace become one space between tokens, none at either end, trailing `;`
/// dropped, literals and numbers `?` when `redacted`. Never gluing two tokens together keeps the result lexing the
/// same, so rendering is idempotent.
fn render<'a>(tokens: impl Iterator<Item = Token<'a>>, redacted: bool) -> String {
    let mut out = String::new();
    let (mut kept, mut gap) = (0, false);
    for (kind, text) in tokens {
        if matches!(kind, Kind::Space | Kind::Comment) {
            gap = true;
            continue;
        }
        if gap && !out.is_empty() {
            out.push(' ');
        }
        gap = false;
        out.push_str(if redacted && matches!(kind, Kind::Literal | Kind::Number) { "?" } else { text });
        if kind != Kind::Semicolon {
            kept = out.len();
        }
    }
    out.truncate(kept);
    out
}

fn is_word((kind, text): Token<'_>, keyword: &str) -> bool {
    kind == Kind::Word && text.eq_ignore_ascii_case(keyword)
}

/// Consumes tokens up to the `)` that closes an already consumed `(`.
fn skip_parens<'a>(tokens: &mut impl Iterator<Item = Token<'a>>) {
    let mut depth = 1usize;
    for token in tokens {
        match token {
            (Kind::Punct, "(") => depth += 1,
            (Kind::Punct, ")") => {
                depth -= 1;
                if depth == 0 {
                    return;
                }
            }
            _ => {}
        }
    }
}

/// A name part as PostgreSQL resolves it: unquoted folded to lower case, quoted exact.
fn ident((kind, text): Token<'_>) -> Option<String> {
    match kind {
        Kind::Word => Some(text.to_ascii_lowercase()),
        Kind::QuotedIdent => {
            let (_, quoted) = text.split_once('"')?;
            Some(quoted.strip_suffix('"').unwrap_or(quoted).replace("\"\"", "\""))
        }
        _ => None,
    }
}

/// The value of a string literal (a COPY file name or command); escapes beyond the common backslash ones are kept
/// as written.
fn string_value((kind, text): Token<'_>) -> Option<String> {
    if kind != Kind::Literal {
        return None;
    }
    if let Some(tagged) = text.strip_prefix('$') {
        let delimiter = text.get(..tagged.find('$')? + 2)?;
        let body = text.get(delimiter.len()..)?;
        return Some(body.strip_suffix(delimiter).unwrap_or(body).to_string());
    }
    let (prefix, body) = text.split_once('\'')?;
    if !prefix.chars().all(|c| c.is_ascii_alphabetic() || c == '&') {
        return None;
    }
    let body = body.strip_suffix('\'').unwrap_or(body);
    if !prefix.eq_ignore_ascii_case("e") {
        return Some(body.replace("''", "'"));
    }
    let mut value = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        value.push(match c {
            '\\' => match chars.next() {
                Some('n') => '\n',
                Some('t') => '\t',
                Some('r') => '\r',
                Some('b') => '\x08',
                Some('f') => '\x0c',
                Some(other) => other,
                None => break,
            },
            // Only a doubled quote can stand inside a terminated literal.
            '\'' => {
                chars.next();
                '\''
            }
            c => c,
        });
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn redact_hides_strings_and_numbers() {
        assert_eq!(
            redact("select * from t where email = 'a@x' and id = 42;"),
            "select * from t where email = ? and id = ?"
        );
    }

    #[test]
    fn redact_hides_every_literal_form_and_drops_comments() {
        assert_eq!(
            redact(
                "SELECT E'it\\'s', $$x;y$$, $a$ z $a$, \"Col 1\" FROM t1 -- secret\n WHERE n = -3.5e2 /* c /* nested */ */"
            ),
            "SELECT ?, ?, ?, \"Col 1\" FROM t1 WHERE n = -?"
        );
        assert_eq!(redact("select U&'d\\0061t', B'101', X'1F', n'x', e'a''b'"), "select ?, ?, ?, ?, ?");
        assert_eq!(
            redact("select 0x1F, 1_000, .5, 1e10, 3., t1.col_2 from \"a\"\"b\""),
            "select ?, ?, ?, ?, ?, t1.col_2 from \"a\"\"b\""
        );
    }

    #[test]
    fn redact_keeps_parameters() {
        assert_eq!(redact("insert into t values ($1, 'x')"), "insert into t values ($1, ?)");
    }

    #[test]
    fn unterminated_literals_and_comments_hide_the_rest() {
        assert_eq!(redact("select 'secret; drop table t"), "select ?");
        assert_eq!(redact("select E'a\\' secret"), "select ?");
        assert_eq!(redact("select $x$ secret"), "select ?");
        assert_eq!(redact("select \"x from t where pw = 'p"), "select ?");
        assert_eq!(redact("select 1 /* secret /* */ still secret"), "select ?");
        assert_eq!(redact("select U&'x"), "select ?");
    }

    #[test]
    fn normalize_collapses_whitespace_outside_literals() {
        assert_eq!(normalize("  select 1 ;\n\n"), "select 1");
        assert_eq!(normalize("select  'a   b'"), "select 'a   b'");
        assert_eq!(normalize("SELECT 1 -- c\n"), "SELECT 1");
        assert_eq!(normalize("select a/*c*/b, \"x  y\";; ;"), "select a b, \"x  y\"");
    }

    #[test]
    fn a_scripts_identity_ignores_layout_and_comments_only() {
        let a = split_script("create table a (x int);\n-- why\ninsert into a values (1);");
        let b = split_script("create table a (x int); insert into a values (1)");
        assert_eq!(script_sha256(&a), script_sha256(&b));
        assert_ne!(script_sha256(&a), script_sha256(&split_script("create table a (x int); insert into a values (2)")));
    }

    #[test]
    fn hashes_ignore_layout() {
        assert_eq!(sha256("select 1"), sha256("select   1;"));
        assert_ne!(sha256("select 1"), sha256("select 2"));
        assert_eq!(sha256(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn a_script_splits_on_semicolons_outside_literals_and_comments() {
        assert_eq!(
            split_script("create table a(x int);\n-- c; not a split\ninsert into a values ('x;y');\n$$;$$;;"),
            ["create table a(x int)", "insert into a values ('x;y')", "$$;$$"]
        );
        assert_eq!(split_script("select /* ; */ \"a;b\"; $f$ ; $f$"), ["select \"a;b\"", "$f$ ; $f$"]);
    }

    #[test]
    fn copy_reads_direction_table_and_endpoint() {
        let read = |sql| copy(sql).map(|c| (c.direction, c.table, c.endpoint));
        use CopyDirection::*;
        use CopyEndpoint::*;
        assert_eq!(read("COPY public.t TO STDOUT"), Some((To, Some("public.t".into()), Stdout)));
        assert_eq!(
            read("copy \"My T\"(a,b) to '/tmp/x.csv' with csv"),
            Some((To, Some("My T".into()), File("/tmp/x.csv".into())))
        );
        assert_eq!(
            read("COPY (select * from t) TO PROGRAM 'gzip > /tmp/x'"),
            Some((To, None, Program("gzip > /tmp/x".into())))
        );
        assert_eq!(read("copy t from stdin"), Some((From, Some("t".into()), Stdin)));
        assert_eq!(read("select 1"), None);
        assert_eq!(read("  /* x */ Copy T to stdout"), Some((To, Some("t".into()), Stdout)));
        assert_eq!(
            read("copy binary S.\"a\"\"b\" (x) to e'/tmp/it\\'s'"),
            Some((To, Some("s.a\"b".into()), File("/tmp/it's".into())))
        );
        assert_eq!(read("copy (select ')' from (t)) to $p$/tmp/y$p$"), Some((To, None, File("/tmp/y".into()))));
        assert_eq!(read("copy t to"), None);
        assert_eq!(read("copy"), None);
    }

    /// Text made of the characters that matter to the lexer, so the interesting paths are hit far more often than by
    /// arbitrary Unicode.
    fn sqlish() -> impl Strategy<Value = String> {
        "[-'\"$;/*\\\\ \n\rabeEuU&xX0-9._()é]{0,40}"
    }

    fn exercise(s: &str) {
        let _ = (redact(s), normalize(s), sha256(s), split_script(s), copy(s));
    }

    proptest! {
        #[test]
        fn nothing_panics_on_arbitrary_text(s in any::<String>()) {
            exercise(&s);
        }

        #[test]
        fn nothing_panics_on_sql_like_text(s in sqlish()) {
            exercise(&s);
            exercise(&format!("copy t to {s}"));
            exercise(&format!("copy ({s}) to stdout"));
        }

        #[test]
        fn no_literal_content_survives_redaction(s in any::<String>()) {
            prop_assert_eq!(redact(&format!("select '{}'", s.replace('\'', "''"))), "select ?");
        }

        #[test]
        fn normalize_is_idempotent(s in any::<String>()) {
            let once = normalize(&s);
            prop_assert_eq!(normalize(&once), once);
        }

        #[test]
        fn normalize_is_idempotent_on_sql_like_text(s in sqlish()) {
            let once = normalize(&s);
            prop_assert_eq!(normalize(&once), once);
        }
    }
}
