//! Untrusted text as a log field.

/// How much of an untrusted string a log line keeps.
pub const UNTRUSTED_LOG_CHARS: usize = 200;

/// An untrusted string (a query parameter, a remote error text) as a log field: `Debug`-escaped,
/// so a newline or control character cannot forge a log line, and cut to
/// [`UNTRUSTED_LOG_CHARS`] characters. Log it with `field = ?Untrusted(s)`.
pub struct Untrusted<'a>(pub &'a str);

impl std::fmt::Debug for Untrusted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total = self.0.chars().count();
        let kept: String = self.0.chars().take(UNTRUSTED_LOG_CHARS).collect();
        write!(f, "{kept:?}")?;
        if total > UNTRUSTED_LOG_CHARS {
            write!(f, "…(+{} chars)", total - UNTRUSTED_LOG_CHARS)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_strings_are_escaped_and_capped() {
        let forged = "access_denied\n2026-12-01T00:00:00Z  INFO gangway: operator signed in";
        let shown = format!("{:?}", Untrusted(forged));
        assert!(!shown.contains('\n'), "{shown}");
        assert!(shown.contains("\\n"));
        let long = "x".repeat(5_000);
        let shown = format!("{:?}", Untrusted(&long));
        assert!(shown.len() < UNTRUSTED_LOG_CHARS + 30, "{}", shown.len());
        assert!(shown.ends_with("…(+4800 chars)"));
    }
}
