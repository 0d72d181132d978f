//! Human durations (`250ms`, `1.5s`, `7d`) as used by the CLI, the API and
//! the configuration.

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: expected a number with a unit (ns, us, ms, s, m, h, d), e.g. 250ms or 1.5s"
)]
pub struct DurationParseError {
    pub input: String,
}

/// Parses `250ms`, `1.5s`, `2m`, `7d`, `100us`, `10ns` into nanoseconds. A
/// bare number is read as nanoseconds only when it is `0`.
pub fn parse_duration_ns(text: &str) -> Result<u64, DurationParseError> {
    let error = || DurationParseError {
        input: text.to_owned(),
    };
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    if number.is_empty() {
        return Err(error());
    }
    let value: f64 = number.parse().map_err(|_| error())?;
    let unit_ns: f64 = match unit.trim() {
        "" if value == 0.0 => 1.0,
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        "d" => 86400e9,
        "w" => 7.0 * 86400e9,
        _ => return Err(error()),
    };
    let nanos = value * unit_ns;
    if !nanos.is_finite() || nanos < 0.0 || nanos > u64::MAX as f64 {
        return Err(error());
    }
    Ok(nanos.round() as u64)
}

/// Short human form: `262ms`, `1.50s`, `850µs`, `12ns`.
pub fn format_duration_ns(nanos: u64) -> String {
    let value = nanos as f64;
    if nanos >= 60_000_000_000 {
        format!("{:.1}m", value / 60e9)
    } else if nanos >= 10_000_000_000 {
        format!("{:.1}s", value / 1e9)
    } else if nanos >= 1_000_000_000 {
        format!("{:.2}s", value / 1e9)
    } else if nanos >= 1_000_000 {
        format!("{}ms", (value / 1e6).round() as u64)
    } else if nanos >= 1_000 {
        format!("{}µs", (value / 1e3).round() as u64)
    } else {
        format!("{nanos}ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_durations() {
        assert_eq!(parse_duration_ns("250ms"), Ok(250_000_000));
        assert_eq!(parse_duration_ns("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration_ns("7d"), Ok(7 * 86_400_000_000_000));
        assert_eq!(parse_duration_ns("0"), Ok(0));
        assert!(parse_duration_ns("10").is_err());
        assert!(parse_duration_ns("ms").is_err());
        assert!(parse_duration_ns("1.2.3s").is_err());
    }

    #[test]
    fn test_format_durations() {
        assert_eq!(format_duration_ns(262_000_000), "262ms");
        assert_eq!(format_duration_ns(1_500_000_000), "1.50s");
        assert_eq!(format_duration_ns(850_000), "850µs");
    }
}
