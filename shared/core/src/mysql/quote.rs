//! Quoting for MySQL and MariaDB SQL. Every session grantwarden opens sets
//! `sql_mode` itself (grantwarden-mysql's `session::SQL_MODE`): no `ANSI_QUOTES` (double
//! quotes are strings, identifiers take backticks) and no
//! `NO_BACKSLASH_ESCAPES` (a backslash in a string escapes), which is what
//! these functions assume.

/// An identifier in backticks, a backtick doubled.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A string literal in single quotes: a quote doubled, a backslash escaped,
/// NUL written as `\0` (one function with the report's spelling of an
/// account, [`crate::model::AccountGrantee`]).
pub use crate::model::mysql_string as string;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_double_and_backslashes_escape() {
        assert_eq!(ident("a`b"), "`a``b`");
        assert_eq!(string("o'k\\"), "'o''k\\\\'");
        assert_eq!(string("a\0b"), "'a\\0b'");
    }
}
