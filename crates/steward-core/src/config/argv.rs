//! Splits the text after `command:` into a program and its arguments.
//!
//! No shell ever runs a credential command: a shell would expand `$VARS`,
//! globs and `;` in a string that sits in a config file. The split follows
//! the familiar subset of POSIX shell word rules:
//! - words are separated by unquoted whitespace;
//! - `'single quotes'` keep everything inside literally;
//! - `"double quotes"` group words, and inside them `\` escapes only `"`, `\`,
//!   `$` and `` ` `` (otherwise it stays a backslash);
//! - outside quotes, `\` makes the next character literal;
//! - `""` and `''` produce an empty argument.

/// Why a command line could not be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ArgvError {
    /// A `'` or `"` is never closed.
    #[error("a {0} quote is never closed")]
    UnclosedQuote(char),
    /// The text ends in a lone backslash.
    #[error("it ends with a lone backslash")]
    TrailingBackslash,
}

/// `pass show "social token"` → `["pass", "show", "social token"]`.
pub(crate) fn split(text: &str) -> Result<Vec<String>, ArgvError> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word exists once anything (even an empty quote pair) started it.
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(ArgvError::UnclosedQuote('\'')),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(ArgvError::UnclosedQuote('"')),
                        },
                        Some(c) => word.push(c),
                        None => return Err(ArgvError::UnclosedQuote('"')),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(ArgvError::TrailingBackslash),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<String> {
        split(text).unwrap_or_else(|e| vec![format!("error: {e}")])
    }

    #[test]
    fn splits_like_a_shell_without_expanding() {
        assert_eq!(ok("pass show social"), ["pass", "show", "social"]);
        assert_eq!(ok("  op  read   'op://vault/item/field' "), ["op", "read", "op://vault/item/field"]);
        assert_eq!(ok(r#"printf "%s" "a b""#), ["printf", "%s", "a b"]);
        assert_eq!(ok(r#"echo "say \"hi\" \n" its\ ok"#), ["echo", r#"say "hi" \n"#, "its ok"]);
        assert_eq!(ok("echo $HOME; rm -rf /"), ["echo", "$HOME;", "rm", "-rf", "/"]);
        assert_eq!(ok("a '' \"\" b"), ["a", "", "", "b"]);
        assert_eq!(ok("a'b c'd"), ["ab cd"]);
        assert!(ok("").is_empty());
        assert_eq!(split("echo 'open"), Err(ArgvError::UnclosedQuote('\'')));
        assert_eq!(split("echo \"open"), Err(ArgvError::UnclosedQuote('"')));
        assert_eq!(split("echo \\"), Err(ArgvError::TrailingBackslash));
    }
}
