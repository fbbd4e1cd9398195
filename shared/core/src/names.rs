//! Names as people write them: `schema.name` with PostgreSQL's double
//! quoting, and functions as `[schema.]name(argtypes)`. Read from baselines,
//! grant webhooks, tickets and pgaudit lines alike; what the catalog says is
//! never glued together and parsed back with these.

/// Removes surrounding double quotes and undoubles inner ones.
pub fn unquote(s: &str) -> String {
    let t = s.trim();
    if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') {
        t[1..t.len() - 1].replace("\"\"", "\"")
    } else {
        t.to_owned()
    }
}

/// Splits `schema.name`, honouring double quotes (`"my.schema"."Table"`).
pub fn split_qualified(s: &str) -> Option<(String, String)> {
    let mut in_quotes = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '.' if !in_quotes => {
                let (a, b) = (&s[..i], &s[i + 1..]);
                if a.trim().is_empty() || b.trim().is_empty() {
                    return None;
                }
                return Some((unquote(a), unquote(b)));
            }
            _ => {}
        }
    }
    None
}

/// A function as a baseline writes it: `[schema.]name(argtypes)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionName {
    /// The schema, when written.
    pub schema: Option<String>,
    /// The name, unquoted.
    pub name: String,
    /// The argument types, spelled as `oidvectortypes` does (`integer, text`).
    pub args: String,
}

/// Reads `[schema.]name(argtypes)`: schema and name may be double-quoted
/// (`""` for a quote inside), and must be when they hold `(`, `.` or `"`; the
/// argument list runs from the first `(` outside quotes to the last `)`, its
/// spacing normalized as `oidvectortypes` prints it (`f( integer ,text )` is
/// `f(integer, text)`). This parses what a person wrote; what the catalog
/// says is never glued together and parsed back.
pub fn parse_function(text: &str) -> Option<FunctionName> {
    let text = text.trim();
    let mut in_quotes = false;
    let mut open = None;
    for (i, c) in text.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '(' if !in_quotes => {
                open = Some(i);
                break;
            }
            _ => {}
        }
    }
    let open = open?;
    let close = text.rfind(')')?;
    if close < open || in_quotes {
        return None;
    }
    let head = text[..open].trim();
    let (schema, name) = match split_qualified(head) {
        Some((s, n)) => (Some(s), n),
        None => (None, unquote(head)),
    };
    if name.is_empty() || schema.as_deref() == Some("") {
        return None;
    }
    Some(FunctionName { schema, name, args: normalize_args(&text[open + 1..close]) })
}

/// `integer ,  text` -> `integer, text`; spacing inside double quotes is kept.
fn normalize_args(args: &str) -> String {
    let mut parts = Vec::new();
    let (mut current, mut in_quotes, mut depth) = (String::new(), false, 0u32);
    for c in args.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                current.push(c);
            }
            ',' if !in_quotes && depth == 0 => parts.push(std::mem::take(&mut current)),
            '(' if !in_quotes => {
                depth += 1;
                current.push(c);
            }
            ')' if !in_quotes => {
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            c if c.is_whitespace() && !in_quotes => {
                if !current.is_empty() && !current.ends_with(' ') {
                    current.push(' ');
                }
            }
            c => current.push(c),
        }
    }
    parts.push(current);
    parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).collect::<Vec<_>>().join(", ")
}

/// How a baseline (and `generate`) writes a function: `name(argtypes)`, the
/// name double-quoted unless it is a plain lower-case identifier, so
/// [`parse_function`] reads it back whatever it holds.
pub fn function_signature(name: &str, args: &str) -> String {
    format!("{}({args})", crate::model::display_ident(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names_honour_quotes() {
        assert_eq!(split_qualified("orders.line_items"), Some(("orders".into(), "line_items".into())));
        assert_eq!(split_qualified(r#""my.schema"."Tab""le""#), Some(("my.schema".into(), "Tab\"le".into())));
        assert_eq!(split_qualified("nodot"), None);
        let f = |t: &str| parse_function(t).map(|f| (f.schema, f.name, f.args));
        assert_eq!(f("f( integer ,text )"), Some((None, "f".into(), "integer, text".into())));
        assert_eq!(f("s.f()"), Some((Some("s".into()), "f".into(), String::new())));
        assert_eq!(f("f"), None);
        // a name that holds what a signature is made of, quoted, reads back whole
        let hostile = r#"f(app."(" ), pg_catalog.lo_export(oid, text), app.g "#;
        let written = format!("app.{}", function_signature(hostile, r#"app."(", app.")""#));
        assert_eq!(f(&written), Some((Some("app".into()), hostile.into(), r#"app."(", app.")""#.into())));
        assert_eq!(
            f(r#""my.schema"."Total"(integer)"#),
            Some((Some("my.schema".into()), "Total".into(), "integer".into()))
        );
    }
}
