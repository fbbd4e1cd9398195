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
pub fn parse_yaml<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, FileError> {
    let failed_path = RefCell::new(String::new());
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
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

/// serde-saphyr appends " at line L, column C"; we print location our own way.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}
