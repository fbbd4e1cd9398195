//! Reading YAML inputs so that every error names the file, the path inside it
//! (`roles.app_rw.grants[1].privileges[0]`) and the line.

use std::cell::RefCell;
use std::fmt;

use serde::de::DeserializeOwned;

/// A YAML input (baseline, policy registry, scoring config) that could not be read;
/// names the file and the path inside it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FileError {
    /// File (or other source label).
    pub file: String,
    /// Path inside the document, e.g. `roles.app_rw.grants[1].privileges[0]`; empty for the root.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
}

impl FileError {
    /// An error at `path` in `file` that no line locates: what a check after
    /// parsing finds (a name unqualified, a privilege its object does not take).
    pub fn at(file: &str, path: impl Into<String>, message: impl Into<String>) -> Self {
        FileError { file: file.to_owned(), path: path.into(), message: message.into(), line: None, column: None }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, " (line {l}, column {c})")?;
        }
        Ok(())
    }
}

/// Reads YAML into `T`, with file, path and line in any error.
///
/// Tracking the path of every value costs a third of the parse of a large
/// baseline, and only an error needs it: the text is read without it, and a
/// text that fails is read again with it (the same text fails the same way).
pub fn parse_yaml<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, FileError> {
    let untracked = serde_saphyr::from_str_with_options::<T>(text, options_for(text));
    match untracked {
        Ok(value) => Ok(value),
        Err(_) => parse_tracking_path(text, file),
    }
}

fn options_for(text: &str) -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    options.budget = Some(budget_for(text));
    options
}

/// [`parse_yaml`] with the path of the value being read kept for the error.
fn parse_tracking_path<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, FileError> {
    let failed_path = RefCell::new(String::new());
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options_for(text), |de| {
        serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
            let path = e.path().to_string();
            *failed_path.borrow_mut() = if path == "." { String::new() } else { path };
            e.into_inner()
        })
    });
    parsed.map_err(|e| {
        let location = e.location();
        FileError {
            file: file.to_owned(),
            path: failed_path.into_inner(),
            message: strip_location(&e.without_snippet().to_string()),
            line: location.map(|l| l.line()),
            column: location.map(|l| l.column()),
        }
    })
}

/// The parser's limits for `text`: serde-saphyr's defaults (a quarter of a million
/// nodes) would refuse the generated baseline of a catalog of 10k tables. Nodes,
/// events and scalar bytes may grow with the text itself, which bounds them
/// without letting a small file expand: aliases, the way a YAML bomb grows,
/// keep their default caps.
fn budget_for(text: &str) -> serde_saphyr::Budget {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = budget.max_nodes.max(text.len());
    budget.max_events = budget.max_events.max(2 * text.len());
    budget.max_total_scalar_bytes = budget.max_total_scalar_bytes.max(text.len());
    budget
}

/// serde-saphyr appends " at line L, column C"; we print location our own way.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_file_is_read_but_an_alias_bomb_is_not() {
        // the generated baseline of 10k tables holds more nodes than serde-saphyr's default budget
        let large: String = (0..300_000).map(|i| format!("- {i}\n")).collect();
        assert_eq!(parse_yaml::<Vec<u32>>(&large, "large.yaml").unwrap().len(), 300_000);
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..9 {
            let prev = if i == 0 { "a".to_owned() } else { format!("b{}", i - 1) };
            bomb.push_str(&format!("b{i}: &b{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        assert!(parse_yaml::<serde_json::Value>(&bomb, "bomb.yaml").is_err(), "ten billion nodes from one kilobyte");
    }

    #[test]
    fn an_error_names_the_path_and_line_though_a_good_text_is_read_without_them() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Doc {
            items: Vec<Item>,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Item {
            n: u32,
        }
        assert_eq!(parse_yaml::<Doc>("items:\n  - n: 1\n  - n: 2\n", "d.yaml").unwrap().items.len(), 2);
        let e = parse_yaml::<Doc>("items:\n  - n: 1\n  - n: x\n", "d.yaml").unwrap_err();
        assert_eq!((e.file.as_str(), e.path.as_str(), e.line), ("d.yaml", "items[1].n", Some(3)), "{e}");
    }
}
