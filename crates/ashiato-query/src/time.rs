//! Parsing of query time bounds: RFC 3339 timestamps or unix nanoseconds.
//!
//! Written by hand because the grammar we accept is small and a date crate
//! would be the only reason to pull one in.

use crate::QueryError;

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// Parses `2026-01-02T03:04:05.123Z`, `2026-01-02T03:04:05+09:00` or a bare
/// count of unix nanoseconds (`1767323045000000000`) into unix nanoseconds.
pub fn parse_time(text: &str) -> Result<u64, QueryError> {
    let trimmed = text.trim();
    let invalid = || QueryError::InvalidTime {
        input: text.to_owned(),
    };
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return trimmed.parse::<u64>().map_err(|_| invalid());
    }
    let nanos = parse_rfc3339(trimmed).ok_or_else(invalid)?;
    u64::try_from(nanos).map_err(|_| invalid())
}

/// Signed nanoseconds since the epoch, or `None` when the text is not RFC 3339.
fn parse_rfc3339(text: &str) -> Option<i128> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !text.is_ascii() {
        return None;
    }
    let year = digits(&bytes[0..4])?;
    let month = digits(&bytes[5..7])?;
    let day = digits(&bytes[8..10])?;
    let hour = digits(&bytes[11..13])?;
    let minute = digits(&bytes[14..16])?;
    let second = digits(&bytes[17..19])?;
    let separators_ok = bytes[4] == b'-'
        && bytes[7] == b'-'
        && matches!(bytes[10], b'T' | b't' | b' ')
        && bytes[13] == b':'
        && bytes[16] == b':';
    let in_range = (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour < 24
        && minute < 60
        // 60 admits a leap second, which we fold into the next second
        && second <= 60;
    if !separators_ok || !in_range {
        return None;
    }
    let (fraction_nanos, rest) = parse_fraction(&text[19..])?;
    let offset_seconds = parse_offset(rest)?;
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_seconds;
    Some(seconds * NANOS_PER_SECOND + fraction_nanos)
}

/// Reads an optional `.123456789` fraction; returns its nanoseconds and the rest.
fn parse_fraction(text: &str) -> Option<(i128, &str)> {
    let Some(after_dot) = text.strip_prefix('.') else {
        return Some((0, text));
    };
    let length = after_dot.bytes().take_while(u8::is_ascii_digit).count();
    if length == 0 {
        return None;
    }
    let mut nanos: i128 = 0;
    // digits beyond nanosecond precision are dropped, not rounded
    for (index, byte) in after_dot.bytes().take(length).enumerate() {
        if index < 9 {
            nanos = nanos * 10 + i128::from(byte - b'0');
        }
    }
    for _ in length..9 {
        nanos *= 10;
    }
    Some((nanos, &after_dot[length..]))
}

/// Reads `Z` or `±HH:MM` and returns the offset east of UTC in seconds.
fn parse_offset(text: &str) -> Option<i128> {
    if text == "Z" || text == "z" {
        return Some(0);
    }
    let bytes = text.as_bytes();
    if bytes.len() != 6 || bytes[3] != b':' {
        return None;
    }
    let sign = match bytes[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours = digits(&bytes[1..3])?;
    let minutes = digits(&bytes[4..6])?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 3_600 + minutes * 60))
}

fn digits(bytes: &[u8]) -> Option<i128> {
    bytes.iter().try_fold(0i128, |acc, byte| {
        byte.is_ascii_digit()
            .then(|| acc * 10 + i128::from(byte - b'0'))
    })
}

fn is_leap_year(year: i128) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i128, month: i128) -> i128 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// civil-from-days inverse, with eras of 400 years).
fn days_from_civil(year: i128, month: i128, day: i128) -> i128 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_unix_nanos_pass_through() {
        assert_eq!(
            parse_time("1767323045000000000").unwrap(),
            1_767_323_045_000_000_000
        );
        assert_eq!(parse_time("0").unwrap(), 0);
    }

    #[test]
    fn test_rfc3339_utc_and_fraction() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_time("2026-01-02T03:04:05Z").unwrap(),
            1_767_323_045_000_000_000
        );
        assert_eq!(
            parse_time("2026-01-02T03:04:05.5Z").unwrap(),
            1_767_323_045_500_000_000
        );
        assert_eq!(
            parse_time("2026-01-02T03:04:05.123456789123Z").unwrap(),
            1_767_323_045_123_456_789
        );
    }

    #[test]
    fn test_rfc3339_offsets() {
        assert_eq!(
            parse_time("2026-01-02T12:04:05+09:00").unwrap(),
            parse_time("2026-01-02T03:04:05Z").unwrap()
        );
        assert_eq!(
            parse_time("2026-01-01T22:04:05-05:00").unwrap(),
            parse_time("2026-01-02T03:04:05Z").unwrap()
        );
    }

    #[test]
    fn test_leap_day() {
        assert_eq!(
            parse_time("2024-02-29T00:00:00Z").unwrap(),
            1_709_164_800_000_000_000
        );
        assert!(parse_time("2025-02-29T00:00:00Z").is_err());
    }

    #[test]
    fn test_garbage_is_refused() {
        for input in [
            "",
            "yesterday",
            "2026-01-02",
            "2026-01-02T03:04:05",
            "2026-13-02T03:04:05Z",
            "2026-01-02T03:04:05.Z",
            "1969-12-31T23:59:59Z",
            "-5",
            "99999999999999999999999",
            "２０２６-01-02T03:04:05Z",
        ] {
            assert!(parse_time(input).is_err(), "{input:?} should be refused");
        }
    }
}
