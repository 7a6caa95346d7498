//! Customers: the records that own invitations and tenants (name unique regardless of case,
//! optional contact, notes).

mod records;

use crate::types::CustomerId;
use time::OffsetDateTime;

pub use records::{create, find_or_create, get, list, names, page_after, update};

/// The longest customer name.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest contact.
pub const MAX_CONTACT_CHARS: usize = 200;
/// The longest notes.
pub const MAX_NOTES_CHARS: usize = 2000;

/// A customer as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Customer {
    /// Gangway's id.
    pub id: CustomerId,
    /// Unique regardless of case.
    pub name: String,
    /// Who to talk to, free text.
    pub contact: Option<String>,
    /// Free notes for operators.
    pub notes: Option<String>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A customer in the list, with what it owns.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The record.
    pub customer: Customer,
    /// All its invitations, whatever their status.
    pub invitations: i64,
    /// Its tenants that are not offboarded.
    pub connected_tenants: i64,
}

/// A customer's name, trimmed and checked: 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerName(String);

impl CustomerName {
    /// Checks a name as typed.
    pub fn parse(raw: &str) -> Result<Self, CustomerError> {
        let name = raw.trim();
        let invalid = |message: &str| CustomerError::Invalid {
            field: Field::Name,
            message: message.to_owned(),
        };
        if name.is_empty() {
            return Err(invalid("Enter the customer's name."));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(invalid(
                "The customer's name must be at most 200 characters.",
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(invalid(
                "The customer's name must not contain control characters such as line breaks.",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as it is stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which input a validation message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The customer's name.
    Name,
    /// Who to talk to.
    Contact,
    /// Free notes.
    Notes,
}

/// A validated customer record as an operator entered it.
#[derive(Debug, Clone)]
pub struct CustomerDetails {
    /// The name.
    pub name: CustomerName,
    /// Who to talk to, if given.
    pub contact: Option<String>,
    /// Notes, if given.
    pub notes: Option<String>,
}

impl CustomerDetails {
    /// Checks every field, returning all problems at once (in field order).
    pub fn parse(name: &str, contact: &str, notes: &str) -> Result<Self, Vec<CustomerError>> {
        let name = CustomerName::parse(name);
        let contact = optional_text(
            contact,
            Field::Contact,
            MAX_CONTACT_CHARS,
            "The contact must be at most 200 characters.",
            false,
        );
        let notes = optional_text(
            notes,
            Field::Notes,
            MAX_NOTES_CHARS,
            "The notes must be at most 2,000 characters.",
            true,
        );
        match (name, contact, notes) {
            (Ok(name), Ok(contact), Ok(notes)) => Ok(Self {
                name,
                contact,
                notes,
            }),
            (name, contact, notes) => Err([name.err(), contact.err(), notes.err()]
                .into_iter()
                .flatten()
                .collect()),
        }
    }
}

/// Blank means none; otherwise capped in length and free of control characters (line breaks
/// allowed where `multiline`).
fn optional_text(
    raw: &str,
    field: Field,
    max: usize,
    too_long: &str,
    multiline: bool,
) -> Result<Option<String>, CustomerError> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let invalid = |message: &str| CustomerError::Invalid {
        field,
        message: message.to_owned(),
    };
    if text.chars().count() > max {
        return Err(invalid(too_long));
    }
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if text.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(invalid(if multiline {
            "The notes must not contain control characters."
        } else {
            "The contact must not contain control characters such as line breaks."
        }));
    }
    Ok(Some(text.to_owned()))
}

/// Why a customer operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum CustomerError {
    /// A field's value is not acceptable; the message is a sentence for the page.
    #[error("{message}")]
    Invalid {
        /// The input it is about.
        field: Field,
        /// What to do, as a sentence.
        message: String,
    },
    /// No customer has this id.
    #[error("no such customer")]
    NotFound,
    /// Names are unique regardless of case.
    #[error("A customer named \"{0}\" already exists. Open it instead, or choose another name.")]
    NameTaken(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(
            CustomerName::parse("  Contoso Ltd ").unwrap().as_str(),
            "Contoso Ltd"
        );
        for bad in ["", "   ", "Con\ntoso", "Con\u{7}toso", &"x".repeat(201)] {
            assert!(CustomerName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn details_report_every_bad_field_and_allow_line_breaks_only_in_notes() {
        let ok = CustomerDetails::parse("Contoso", " ", "line one\nline two").unwrap();
        assert_eq!(ok.contact, None);
        assert_eq!(ok.notes.as_deref(), Some("line one\nline two"));
        let errors = CustomerDetails::parse("", "a\nb", &"n".repeat(2001)).unwrap_err();
        let fields: Vec<Field> = errors
            .iter()
            .map(|e| match e {
                CustomerError::Invalid { field, .. } => *field,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(fields, [Field::Name, Field::Contact, Field::Notes]);
    }
}
