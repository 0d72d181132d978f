//! Wall-clock helpers for the terminal commands: unix nanoseconds to a short
//! UTC timestamp, and "now" for `--since`. Small enough that a date crate
//! would cost more than it saves.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the unix epoch, now. A clock before 1970 reads as 0.
pub fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `2026-11-21T05:45:58.123Z`: millisecond precision is what a human reads
/// in a table; the exact nanos stay available through `--json`.
pub fn format_unix_nanos(nanos: u64) -> String {
    let total_seconds = nanos / 1_000_000_000;
    let millis = (nanos % 1_000_000_000) / 1_000_000;
    let days = total_seconds / 86_400;
    let second_of_day = total_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        second_of_day / 3600,
        (second_of_day % 3600) / 60,
        second_of_day % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's days-to-civil algorithm, restricted to non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_epoch_and_known_dates() {
        assert_eq!(format_unix_nanos(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day in a century leap year) 12:34:56.789
        assert_eq!(
            format_unix_nanos(951_827_696_789_000_000),
            "2000-02-29T12:34:56.789Z"
        );
        assert_eq!(
            format_unix_nanos(1_795_238_896_335_330_048),
            "2026-11-21T05:28:16.335Z"
        );
    }

    #[test]
    fn test_end_of_year_rolls_over() {
        // 2023-12-31T23:59:59.999 and one millisecond later
        assert_eq!(
            format_unix_nanos(1_704_067_199_999_000_000),
            "2023-12-31T23:59:59.999Z"
        );
        assert_eq!(
            format_unix_nanos(1_704_067_200_000_000_000),
            "2024-01-01T00:00:00.000Z"
        );
    }
}
