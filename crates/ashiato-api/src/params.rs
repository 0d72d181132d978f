//! Query-string parsing for the search endpoints.
//!
//! The raw query string is decoded here rather than through serde because
//! `attr` repeats, empty values (`service=&operation=`) mean "not set", and
//! every malformed value must produce an error that names its parameter.

use ashiato_model::{Severity, TraceId, parse_duration_ns};
use ashiato_query::{LogQuery, TraceQuery, parse_time};

use crate::error::ApiError;

/// Decoded `name=value` pairs in request order.
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Percent- and `+`-decodes a raw query string; invalid UTF-8 is replaced.
    pub fn parse(raw: Option<&str>) -> Params {
        let pairs = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        Params { pairs }
    }

    /// The last non-empty value of `name` (a later value overrides an earlier one).
    fn get<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.all(name).last()
    }

    /// Every non-empty value of `name`, in order.
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(key, value)| key == name && !value.trim().is_empty())
            .map(|(_, value)| value.as_str())
    }

    fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    fn parsed<T>(
        &self,
        name: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ApiError> {
        self.get(name)
            .map(|value| parse(value).map_err(|reason| ApiError::bad_param(name, reason)))
            .transpose()
    }

    fn duration(&self, name: &'static str) -> Result<Option<u64>, ApiError> {
        self.parsed(name, |value| {
            parse_duration_ns(value).map_err(|error| error.to_string())
        })
    }

    fn time(&self, name: &'static str) -> Result<Option<u64>, ApiError> {
        self.parsed(name, |value| {
            parse_time(value).map_err(|error| error.to_string())
        })
    }

    fn limit(&self) -> Result<Option<usize>, ApiError> {
        self.parsed("limit", |value| match value.trim().parse::<usize>() {
            Ok(limit) if limit > 0 => Ok(limit),
            _ => Err(format!("{value:?} is not a positive integer")),
        })
    }

    fn flag(&self, name: &'static str) -> Result<bool, ApiError> {
        let value = self.parsed(name, |value| {
            match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(format!("{value:?} is not true or false")),
            }
        })?;
        Ok(value.unwrap_or(false))
    }

    fn attributes(&self) -> Result<Vec<(String, String)>, ApiError> {
        self.all("attr")
            .map(|pair| match pair.split_once(':') {
                Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
                _ => Err(ApiError::bad_param(
                    "attr",
                    format!("{pair:?} is not key:value"),
                )),
            })
            .collect()
    }

    /// The parameters of `GET /api/v1/traces`.
    pub fn trace_query(&self) -> Result<TraceQuery, ApiError> {
        Ok(TraceQuery {
            service: self.text("service"),
            operation: self.text("operation"),
            error_only: self.flag("error")?,
            min_duration_ns: self.duration("min_duration")?,
            max_duration_ns: self.duration("max_duration")?,
            attributes: self.attributes()?,
            start_ns: self.time("start")?,
            end_ns: self.time("end")?,
            limit: self.limit()?,
        })
    }

    /// The parameters of `GET /api/v1/logs`.
    pub fn log_query(&self) -> Result<LogQuery, ApiError> {
        Ok(LogQuery {
            service: self.text("service"),
            min_severity: self.parsed("severity", |value| {
                Severity::parse(value).ok_or_else(|| {
                    format!("{value:?} is not one of trace, debug, info, warn, error, fatal")
                })
            })?,
            trace_id: self.parsed("trace_id", |value| {
                TraceId::from_hex(value.trim()).map_err(|error| error.to_string())
            })?,
            text: self.text("q"),
            start_ns: self.time("start")?,
            end_ns: self.time("end")?,
            limit: self.limit()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of<T: std::fmt::Debug>(result: Result<T, ApiError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn test_trace_query_from_full_query_string() {
        let params = Params::parse(Some(
            "service=payments&operation=%E6%94%AF%E6%89%95%E3%81%84+%E5%87%A6%E7%90%86&error=true\
             &min_duration=100ms&max_duration=1.5s&attr=user_id:123&attr=http.route:/a:b\
             &start=2026-01-02T03:04:05Z&end=1767323046000000000&limit=5",
        ));
        let query = params.trace_query().unwrap();
        assert_eq!(
            query,
            TraceQuery {
                service: Some("payments".into()),
                operation: Some("支払い 処理".into()),
                error_only: true,
                min_duration_ns: Some(100_000_000),
                max_duration_ns: Some(1_500_000_000),
                attributes: vec![
                    ("user_id".into(), "123".into()),
                    ("http.route".into(), "/a:b".into())
                ],
                start_ns: Some(1_767_323_045_000_000_000),
                end_ns: Some(1_767_323_046_000_000_000),
                limit: Some(5),
            }
        );
    }

    #[test]
    fn test_empty_values_mean_unset() {
        let params = Params::parse(Some(
            "service=&operation=&error=&min_duration=&attr=&limit=",
        ));
        assert_eq!(params.trace_query().unwrap(), TraceQuery::default());
        assert_eq!(
            Params::parse(None).log_query().unwrap(),
            LogQuery::default()
        );
    }

    #[test]
    fn test_errors_name_the_parameter() {
        let cases = [
            ("min_duration=fast", "invalid min_duration"),
            ("max_duration=10", "invalid max_duration"),
            ("error=maybe", "invalid error"),
            ("attr=novalue", "invalid attr"),
            ("attr=:x", "invalid attr"),
            ("start=yesterday", "invalid start"),
            ("end=-1", "invalid end"),
            ("limit=0", "invalid limit"),
            ("limit=ten", "invalid limit"),
        ];
        for (query, expected) in cases {
            let message = error_of(Params::parse(Some(query)).trace_query());
            assert!(message.starts_with(expected), "{query}: {message}");
        }
        assert!(
            error_of(Params::parse(Some("severity=loud")).log_query())
                .starts_with("invalid severity")
        );
        assert!(
            error_of(Params::parse(Some("trace_id=xyz")).log_query())
                .starts_with("invalid trace_id")
        );
    }

    #[test]
    fn test_log_query() {
        let params = Params::parse(Some(
            "service=batch&severity=WARN&trace_id=5B8EFFF798038103D269B633813FC60C&q=%E6%AE%8B%E9%AB%98",
        ));
        let query = params.log_query().unwrap();
        assert_eq!(query.min_severity, Some(Severity::Warn));
        assert_eq!(
            query.trace_id.map(|id| id.to_hex()).as_deref(),
            Some("5b8efff798038103d269b633813fc60c")
        );
        assert_eq!(query.text.as_deref(), Some("残高"));
        assert_eq!(query.service.as_deref(), Some("batch"));
    }
}
