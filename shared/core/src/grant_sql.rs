//! The GRANT and REVOKE statements pgaudit logs, read as data: a tokenizer
//! and a parser for exactly the forms that grant privileges on objects
//! (the parsed parts become a
//! [`GrantRequest`](crate::request::GrantRequest)).

use crate::manifest::On;
use crate::request::{Action, RequestObject};

/// A parsed GRANT or REVOKE of privileges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GrantSql {
    pub(crate) action: Action,
    pub(crate) privileges: Vec<String>,
    pub(crate) object: RequestObject,
    pub(crate) grantees: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// Unquoted word, upper-cased for keywords; `raw` keeps the folded identifier.
    Word {
        upper: String,
        ident: String,
    },
    /// "quoted identifier", exact.
    Quoted(String),
    Comma,
    Dot,
    Open,
    Close,
    Semi,
}

fn tokenize(sql: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            ',' => {
                chars.next();
                out.push(Token::Comma)
            }
            '.' => {
                chars.next();
                out.push(Token::Dot)
            }
            '(' => {
                chars.next();
                out.push(Token::Open)
            }
            ')' => {
                chars.next();
                out.push(Token::Close)
            }
            ';' => {
                chars.next();
                out.push(Token::Semi)
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            s.push('"');
                        }
                        Some('"') => break,
                        Some(c) => s.push(c),
                        None => return Err("unterminated quoted identifier".into()),
                    }
                }
                out.push(Token::Quoted(s));
            }
            c if c.is_alphanumeric() || c == '_' || c == '$' => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_alphanumeric() || c == '_' || c == '$' {
                        s.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                // unquoted identifiers fold to lower case, as PostgreSQL does
                out.push(Token::Word { upper: s.to_uppercase(), ident: s.to_lowercase() });
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek_kw(&self, kw: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Word { upper, .. }) if upper == kw)
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        let yes = self.peek_kw(kw);
        if yes {
            self.pos += 1;
        }
        yes
    }
    fn expect_kw(&mut self, kw: &str) -> Result<(), String> {
        if self.eat_kw(kw) { Ok(()) } else { Err(format!("expected {kw} at token {}", self.pos + 1)) }
    }
    fn eat(&mut self, t: &Token) -> bool {
        let yes = self.tokens.get(self.pos) == Some(t);
        if yes {
            self.pos += 1;
        }
        yes
    }
    fn ident(&mut self) -> Result<String, String> {
        match self.tokens.get(self.pos).cloned() {
            Some(Token::Word { ident, .. }) => {
                self.pos += 1;
                Ok(ident)
            }
            Some(Token::Quoted(s)) => {
                self.pos += 1;
                Ok(s)
            }
            other => Err(format!("expected a name, found {other:?}")),
        }
    }
    fn qualified(&mut self) -> Result<(Option<String>, String), String> {
        let first = self.ident()?;
        if self.eat(&Token::Dot) { Ok((Some(first), self.ident()?)) } else { Ok((None, first)) }
    }
}

/// Parses `GRANT privs [(cols)] ON [TABLE|SCHEMA|DATABASE|SEQUENCE|ALL TABLES IN SCHEMA] names TO roles [WITH GRANT OPTION]`
/// and the matching REVOKE. `Ok(None)` for role membership (`GRANT role TO role`).
pub(crate) fn parse_grant_sql(sql: &str) -> Result<Option<GrantSql>, String> {
    let mut p = Parser { tokens: tokenize(sql)?, pos: 0 };
    let action = if p.eat_kw("GRANT") {
        Action::Grant
    } else if p.eat_kw("REVOKE") {
        let _grant_option_only = p.eat_kw("GRANT") && p.eat_kw("OPTION") && p.eat_kw("FOR");
        Action::Revoke
    } else {
        return Err("not a GRANT or REVOKE statement".into());
    };
    let mut privileges = Vec::new();
    let mut columns = Vec::new();
    loop {
        let word = p.ident().map_err(|_| "expected a privilege".to_owned())?;
        let mut word = word.to_uppercase();
        if word == "ALL" {
            p.eat_kw("PRIVILEGES");
        } else if word == "ALTER" && p.eat_kw("SYSTEM") {
            word = "ALTER SYSTEM".into();
        }
        privileges.push(word);
        if p.eat(&Token::Open) {
            loop {
                columns.push(p.ident()?);
                if !p.eat(&Token::Comma) {
                    break;
                }
            }
            if !p.eat(&Token::Close) {
                return Err("unclosed column list".into());
            }
        }
        if !p.eat(&Token::Comma) {
            break;
        }
    }
    if !p.eat_kw("ON") {
        return Ok(None); // GRANT role TO role
    }
    let on = if p.eat_kw("ALL") {
        let on = if p.eat_kw("TABLES") {
            On::AllTablesInSchema
        } else if p.eat_kw("SEQUENCES") {
            On::AllSequencesInSchema
        } else if p.eat_kw("FUNCTIONS") || p.eat_kw("ROUTINES") || p.eat_kw("PROCEDURES") {
            On::AllFunctionsInSchema
        } else {
            return Err("expected TABLES, SEQUENCES or FUNCTIONS after ALL".into());
        };
        p.expect_kw("IN")?;
        p.expect_kw("SCHEMA")?;
        on
    } else if p.eat_kw("SCHEMA") {
        On::Schema
    } else if p.eat_kw("DATABASE") {
        On::Database
    } else if p.eat_kw("SEQUENCE") {
        On::Sequence
    } else if p.eat_kw("FUNCTION") || p.eat_kw("PROCEDURE") || p.eat_kw("ROUTINE") {
        return Err("function grants in audit lines are not supported yet".into());
    } else {
        p.eat_kw("TABLE");
        if columns.is_empty() { On::Table } else { On::Column }
    };
    let (schema, name) = p.qualified()?;
    if p.eat(&Token::Comma) {
        return Err("several objects in one statement are not supported yet".into());
    }
    let object =
        match on {
            On::Schema | On::Database => RequestObject { on, schema: None, name: Some(name), columns },
            On::AllTablesInSchema | On::AllSequencesInSchema | On::AllFunctionsInSchema => {
                RequestObject { on, schema: Some(name), name: None, columns }
            }
            _ => RequestObject {
                on,
                schema: Some(schema.ok_or_else(|| {
                    format!("{name:?} is not schema-qualified; the search_path at the time is unknown")
                })?),
                name: Some(name),
                columns,
            },
        };
    if action == Action::Grant {
        p.expect_kw("TO")?;
    } else {
        p.expect_kw("FROM")?;
    }
    let mut grantees = Vec::new();
    loop {
        p.eat_kw("GROUP");
        if p.peek_kw("PUBLIC") {
            p.pos += 1;
            grantees.push("PUBLIC".to_owned());
        } else {
            grantees.push(p.ident()?);
        }
        if !p.eat(&Token::Comma) {
            break;
        }
    }
    Ok(Some(GrantSql { action, privileges, object, grantees }))
}
