//! Text put into HTML: the one escaper every HTML output uses (the
//! dashboard, the HTML reports), so nothing from data is ever markup.

/// Escapes `&`, `<`, `>`, `"` and `'`: safe in element content and in quoted
/// attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_characters_are_escaped_and_the_rest_is_kept() {
        assert_eq!(
            escape(r#"<a href="x">O'Brien & co</a> é"#),
            "&lt;a href=&quot;x&quot;&gt;O&#39;Brien &amp; co&lt;/a&gt; é"
        );
    }
}
