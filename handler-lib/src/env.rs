//! Numbers read from environment variables: one rule (a whole number in a range) and one message
//! for the extension, which refuses to start on a bad value, and the client, which logs it and
//! uses its default.

/// A variable whose value is not a whole number in its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}={value:?} is invalid: must be a whole number from {min} to {max}")]
pub struct NumberError {
    /// The variable.
    pub var: &'static str,
    /// Its value.
    pub value: String,
    /// The smallest value allowed.
    pub min: u64,
    /// The largest value allowed.
    pub max: u64,
}

/// Parses `value` (surrounding blanks ignored), the value of `var`, as a whole number from `min`
/// to `max`.
pub fn parse_number(
    var: &'static str,
    value: &str,
    min: u64,
    max: u64,
) -> Result<u64, NumberError> {
    match value.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(NumberError {
            var,
            value: value.to_owned(),
            min,
            max,
        }),
    }
}

/// Parses `value`, the value of `var`, as a TCP port (1–65535).
pub fn parse_port(var: &'static str, value: &str) -> Result<u16, NumberError> {
    let max = u16::MAX;
    parse_number(var, value, 1, u64::from(max)).map(|n| u16::try_from(n).unwrap_or(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_range_are_read() {
        assert_eq!(parse_number("X", " 50 ", 1, 100), Ok(50));
        assert_eq!(parse_number("X", "1", 1, 100), Ok(1));
        assert_eq!(parse_number("X", "100", 1, 100), Ok(100));
        assert_eq!(parse_port("P", "2774"), Ok(2774));
    }

    #[test]
    fn bad_numbers_name_the_variable_and_the_range() {
        for bad in ["0", "101", "-1", "1.5", "1m", ""] {
            let err = parse_number("SSM_FLAGS_X", bad, 1, 100).expect_err(bad);
            assert_eq!(
                err.to_string(),
                format!("SSM_FLAGS_X={bad:?} is invalid: must be a whole number from 1 to 100")
            );
        }
        assert!(parse_port("P", "70000").is_err());
        assert!(parse_port("P", "0").is_err());
    }
}
