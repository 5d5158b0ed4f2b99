//! Parental PINs: a profile may require a 4-6 digit PIN before a token is bound to it (a TV signed
//! in as that profile) or an app switches to it. The rules of the PIN itself live here; hashing,
//! storage, rate limits and lockout are the application's (`playhead-app/src/identity/pin.rs`).

use std::fmt;

use crate::FieldError;

/// Failed PIN attempts a profile tolerates per [`PIN_FAILURE_WINDOW_MS`] before it is locked
/// (the limit recovers gradually: one attempt every window / limit).
pub const PIN_FAILURES_PER_WINDOW: u32 = 5;
/// The window of [`PIN_FAILURES_PER_WINDOW`]: 15 minutes.
pub const PIN_FAILURE_WINDOW_MS: i64 = 15 * 60_000;

/// A PIN of the right shape: 4 to 6 ASCII digits. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ProfilePin(String);

impl ProfilePin {
    /// Parse a PIN: exactly 4-6 ASCII digits (callers trim what a person typed on a page; the
    /// API takes exactly what its schema states).
    pub fn parse(t: &str) -> Result<Self, FieldError> {
        if (4..=6).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(t.to_owned()))
        } else {
            Err(FieldError::new("pin", "invalid", "must be 4-6 digits"))
        }
    }

    /// The digits (to hash or verify; never to log).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ProfilePin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProfilePin(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_four_to_six_digits() {
        for ok in ["0000", "12345", "987654"] {
            assert!(ProfilePin::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "123", "1234567", "12a4", "١٢٣٤", "12 34", "-123", " 1234"] {
            let e = ProfilePin::parse(bad).expect_err(bad);
            assert_eq!(e.field, "pin", "{bad}");
        }
    }

    #[test]
    fn a_pin_never_prints() {
        let pin = ProfilePin::parse("4321").expect("pin");
        assert!(!format!("{pin:?}").contains("4321"));
    }
}
