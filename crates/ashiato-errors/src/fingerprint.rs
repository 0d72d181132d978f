//! Fingerprints: which occurrences are the same issue, and why.
//!
//! Components, in order (each a `name=value` text the API shows):
//! `service`, `environment`, then the first rule that applies:
//! 1. `custom` — the application's `error.fingerprint` attribute;
//! 2. `type` + `frame` per in-app frame (`module:function`, crash site
//!    first, at most 30) — line numbers and addresses never take part, so
//!    a deploy that moves code keeps the issue;
//! 3. `type` + `message` (normalized) when there is no in-app frame;
//! 4. `type` + `operation` (id-like path segments masked) when there is
//!    no message either.
//!
//! The hash is two FNV-1a 64 passes with different offsets over the
//! components (128 bits, hex); the issue id is its first 12 hex digits.
//! `type` is the bare type name ([`canonical_type`]): the same exception
//! reported by a span event as `__main__.PaymentDeclined` and by a log
//! record as `PaymentDeclined` (or by Datadog as `builtins.ValueError`
//! beside OTel's `ValueError`) is one issue.
//!
//! A fingerprint that has no issue yet joins the oldest issue of the same
//! service, environment and type whose in-app frames extend its own or are
//! extended by them ([`Fingerprint::same_error_deeper`]): one error seen at
//! two depths (a Python log record written where it was caught, the span
//! of middleware further up) is one issue even when the two settle apart.
//!
//! Changing any rule must bump [`ALGORITHM_VERSION`]. Every issue records
//! the version that made it, and nothing is rewritten on a change: an
//! occurrence whose fingerprint the new rules compute differently opens
//! (or joins) the issue of the new fingerprint, and the old issue keeps
//! its counts and stops growing. Version history: 2 used the type as sent;
//! 3 uses the bare type name (only qualified types, such as Python span
//! events', Java's or Go's, get new fingerprints; unqualified ones keep
//! theirs).

use crate::normalize::{canonical_type, normalize_message, normalize_operation};
use crate::stack::Frame;

/// The grouping rules' version, recorded with every issue.
pub const ALGORITHM_VERSION: u32 = 3;

/// Most in-app frames that take part (deep recursion must not make every
/// occurrence unique).
const MAX_FRAMES: usize = 30;

/// A fingerprint with the components that formed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub hash: String,
    pub components: Vec<String>,
    pub algorithm_version: u32,
}

/// What a fingerprint is computed from.
pub struct FingerprintInput<'a> {
    pub service: &'a str,
    pub environment: &'a str,
    pub error_type: &'a str,
    pub message: &'a str,
    pub operation: &'a str,
    pub frames: &'a [Frame],
    pub custom: Option<&'a str>,
}

impl Fingerprint {
    pub fn compute(input: &FingerprintInput<'_>) -> Fingerprint {
        let mut components = vec![
            format!("service={}", input.service),
            format!("environment={}", input.environment),
        ];
        if let Some(custom) = input.custom {
            components.push(format!("custom={custom}"));
            return Fingerprint::from_components(components);
        }
        components.push(format!("type={}", canonical_type(input.error_type)));
        let in_app: Vec<&Frame> = input
            .frames
            .iter()
            .filter(|frame| frame.in_app)
            .take(MAX_FRAMES)
            .collect();
        if !in_app.is_empty() {
            components.extend(
                in_app
                    .iter()
                    .map(|frame| format!("frame={}:{}", frame.module, frame.function)),
            );
        } else if !input.message.trim().is_empty() {
            components.push(format!("message={}", normalize_message(input.message)));
        } else {
            components.push(format!(
                "operation={}",
                normalize_operation(input.operation)
            ));
        }
        Fingerprint::from_components(components)
    }

    /// Whether `other` (an issue's components) is the same error seen
    /// from another depth: the same service, environment and type, and one
    /// in-app frame list (crash site first) a prefix of the other.
    ///
    /// Python's traceback holds only the frames between where an
    /// exception was raised and where it was caught, so a log record
    /// written in the handler and a span ended by middleware further up
    /// report one failure with two frame lists, one extending the other.
    /// Both are folded into one occurrence when they settle together;
    /// when a collector's retry delivers them apart, this keeps them in
    /// one issue.
    pub fn same_error_deeper(&self, other: &[String]) -> bool {
        let split = |components: &[String]| -> (Vec<String>, Vec<String>) {
            let (frames, rest): (Vec<&String>, Vec<&String>) = components
                .iter()
                .partition(|component| component.starts_with("frame="));
            (
                rest.into_iter().cloned().collect(),
                frames.into_iter().cloned().collect(),
            )
        };
        let (mine, my_frames) = split(&self.components);
        let (theirs, their_frames) = split(other);
        let shorter = my_frames.len().min(their_frames.len());
        mine == theirs
            && shorter > 0
            && mine.iter().any(|component| component.starts_with("type="))
            && my_frames[..shorter] == their_frames[..shorter]
    }

    pub fn from_components(components: Vec<String>) -> Fingerprint {
        let mut high = Fnv::new(0x5bd1_e995);
        let mut low = Fnv::new(0);
        for component in &components {
            high.write(component.as_bytes());
            high.write(b"\n");
            low.write(component.as_bytes());
            low.write(b"\n");
        }
        Fingerprint {
            hash: format!("{:016x}{:016x}", high.finish(), low.finish()),
            components,
            algorithm_version: ALGORITHM_VERSION,
        }
    }
}

/// FNV-1a, 64 bits: stable across builds and platforms (std's hasher is not).
pub(crate) struct Fnv(u64);

impl Fnv {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub(crate) fn new(seed: u64) -> Fnv {
        Fnv(Fnv::OFFSET ^ seed)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(Fnv::PRIME);
        }
    }

    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::parse;

    fn python_stack(line_a: u32, line_b: u32) -> String {
        format!(
            "Traceback (most recent call last):\n  File \"/srv/app/api/orders.py\", line {line_a}, in create\n    charge()\n  File \"/srv/app/billing/charge.py\", line {line_b}, in charge\n    raise ValueError(\"declined\")\nValueError: declined 42\n"
        )
    }

    fn fingerprint_of(stack: &str, message: &str) -> Fingerprint {
        let frames = parse(stack);
        Fingerprint::compute(&FingerprintInput {
            service: "shop",
            environment: "prod",
            error_type: "ValueError",
            message,
            operation: "POST /orders",
            frames: &frames,
            custom: None,
        })
    }

    #[test]
    fn test_line_numbers_do_not_change_the_fingerprint() {
        let before = fingerprint_of(&python_stack(10, 20), "declined 42");
        let after = fingerprint_of(&python_stack(31, 77), "declined 43");
        assert_eq!(before, after);
        insta::assert_debug_snapshot!(before);
    }

    #[test]
    fn test_other_function_is_another_issue() {
        let before = fingerprint_of(&python_stack(10, 20), "x");
        let other = fingerprint_of(&python_stack(10, 20).replace("in charge", "in refund"), "x");
        assert_ne!(before.hash, other.hash);
    }

    #[test]
    fn test_without_stack_the_normalized_message_groups() {
        let first = fingerprint_of("", "item 8812 failed after 30s");
        let second = fingerprint_of("", "item 17 failed after 2s");
        assert_eq!(first.hash, second.hash);
        assert_eq!(first.components[3], "message=item <num> failed after <dur>");
        let no_message = fingerprint_of("", "");
        assert_eq!(no_message.components[3], "operation=POST /orders");
    }

    #[test]
    fn test_qualified_and_bare_types_are_one_issue() {
        let frames = parse(&python_stack(1, 2));
        let of = |error_type: &str| {
            Fingerprint::compute(&FingerprintInput {
                service: "shop",
                environment: "prod",
                error_type,
                message: "declined",
                operation: "GET /pay",
                frames: &frames,
                custom: None,
            })
        };
        let span = of("__main__.PaymentDeclined");
        assert_eq!(span, of("PaymentDeclined"));
        assert_eq!(span, of("app.errors.PaymentDeclined"));
        assert_eq!(span.components[2], "type=PaymentDeclined");
        assert_ne!(span.hash, of("CardExpired").hash);
    }

    #[test]
    fn test_custom_fingerprint_overrides() {
        let frames = parse(&python_stack(1, 2));
        let custom = Fingerprint::compute(&FingerprintInput {
            service: "shop",
            environment: "",
            error_type: "ValueError",
            message: "m",
            operation: "op",
            frames: &frames,
            custom: Some("billing-outage"),
        });
        assert_eq!(
            custom.components,
            ["service=shop", "environment=", "custom=billing-outage"]
        );
    }
}
