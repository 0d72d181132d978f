//! The demo's nightly export job: a batch job without traces that logs its
//! failures as structured errors (`error.kind`, `error.message`,
//! `error.stack`), the "error tracking for logs" case. Every run uploads a
//! few report chunks; some uploads fail with one of two recurring errors,
//! so `ashiato issues --source log` has something real to group.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, SeverityNumber};

use super::traffic::Rng;

const UPLOAD_STACK: &str = "Traceback (most recent call last):
  File \"/opt/export/jobs/nightly.py\", line 41, in run
    upload_chunk(bucket, chunk)
  File \"/opt/export/jobs/storage.py\", line 77, in upload_chunk
    client.put_object(Bucket=bucket, Key=key, Body=body)
  File \"/opt/export/venv/lib/python3.12/site-packages/botocore/client.py\", line 565, in _api_call
    return self._make_api_call(operation_name, kwargs)
ConnectionResetError: [Errno 104] Connection reset by peer";

const SCHEMA_STACK: &str = "Traceback (most recent call last):
  File \"/opt/export/jobs/nightly.py\", line 33, in run
    rows = transform(batch)
  File \"/opt/export/jobs/transform.py\", line 19, in transform
    return [Report.parse(row) for row in rows]
  File \"/opt/export/jobs/transform.py\", line 12, in parse
    raise SchemaError(f\"column {name!r} missing in row {index}\")
export.errors.SchemaError: column 'currency' missing in row 311";

/// One export run: info lines, and (always when `force_error`, else by
/// chance) structured error records.
pub fn export_job_logs(
    rng: &mut Rng,
    now: u64,
    force_error: bool,
) -> Vec<(&'static str, LogRecord)> {
    let run = rng.between(100, 999);
    let chunk = rng.between(1, 64);
    let mut logs = vec![record(
        now.saturating_sub(2_000_000),
        SeverityNumber::Info,
        format!("export run {run} started"),
        vec![kv("job.name", "nightly-export"), kv("job.step", "start")],
    )];
    if force_error || rng.chance(0.6) {
        logs.push(record(
            now.saturating_sub(1_000_000),
            SeverityNumber::Error,
            format!("upload of chunk {chunk} failed"),
            vec![
                kv("job.name", "nightly-export"),
                kv("job.step", "upload"),
                kv("error.kind", "ConnectionResetError"),
                kv(
                    "error.message",
                    &format!("upload of chunk {chunk} to s3://reports/run-{run} failed"),
                ),
                kv("error.stack", UPLOAD_STACK),
            ],
        ));
    }
    if rng.chance(0.3) {
        logs.push(record(
            now.saturating_sub(500_000),
            SeverityNumber::Error,
            "transform step failed".to_owned(),
            vec![
                kv("job.name", "nightly-export"),
                kv("job.step", "transform"),
                kv("error.kind", "export.errors.SchemaError"),
                kv(
                    "error.message",
                    &format!("column 'currency' missing in row {}", rng.between(1, 900)),
                ),
                kv("error.stack", SCHEMA_STACK),
            ],
        ));
    }
    logs
}

fn record(
    time: u64,
    severity: SeverityNumber,
    body: String,
    attributes: Vec<KeyValue>,
) -> (&'static str, LogRecord) {
    let text = if severity == SeverityNumber::Error {
        "ERROR"
    } else {
        "INFO"
    };
    let record = LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: time,
        severity_number: severity as i32,
        severity_text: text.to_owned(),
        body: Some(AnyValue {
            value: Some(Value::StringValue(body)),
        }),
        attributes,
        ..Default::default()
    };
    ("export-job", record)
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_forced_run_logs_a_structured_error() {
        let mut rng = Rng::new(7);
        let logs = export_job_logs(&mut rng, 1_000_000_000, true);
        let errors: Vec<&LogRecord> = logs
            .iter()
            .map(|(_, log)| log)
            .filter(|log| log.severity_number == SeverityNumber::Error as i32)
            .collect();
        assert!(!errors.is_empty());
        for log in errors {
            for key in ["error.kind", "error.message", "error.stack"] {
                assert!(log.attributes.iter().any(|kv| kv.key == key), "{key}");
            }
        }
        assert!(logs.iter().all(|(service, _)| *service == "export-job"));
    }
}
