//! Message normalization: the variable parts of an error message (numbers,
//! hex, UUIDs, IPs, emails, URL paths and queries, quoted strings,
//! durations, timestamps) become typed placeholders, so `failed to process
//! item 8812: timeout after 30s` and `failed to process item 17: timeout
//! after 5s` group together.
//!
//! Word based: quoted strings are masked first (their content may contain
//! spaces), then each whitespace-separated word is classified on its core
//! (the word without surrounding punctuation). Words that mix letters and
//! digits keep their letters (`order_8812` → `order_<num>`), which keeps
//! distinct identifiers distinct without keeping their numbers.

/// Longest message normalized; the rest is cut (messages are client data).
const MAX_CHARS: usize = 2_000;

/// The message with variable parts masked.
pub fn normalize_message(message: &str) -> String {
    let message: String = message.chars().take(MAX_CHARS).collect();
    let unquoted = mask_quoted(&message);
    let mut out = String::with_capacity(unquoted.len());
    for (index, word) in unquoted.split_whitespace().enumerate() {
        if index > 0 {
            out.push(' ');
        }
        push_word(word, &mut out);
    }
    out
}

/// An operation name with its id-like parts masked, for grouping: when a
/// span has no `http.route`, its name may carry the concrete path
/// (`GET /items/8812`), and every item would otherwise be its own issue.
/// Only path segments and words that are numbers, hex ids or UUIDs are
/// masked (`GET /items/<id>`); route words stay, so `GET /users/<id>` and
/// `GET /items/<id>` remain different operations.
pub fn normalize_operation(operation: &str) -> String {
    let operation: String = operation.chars().take(MAX_CHARS).collect();
    let mut out = String::with_capacity(operation.len());
    let mut segment = String::new();
    for c in operation.chars() {
        if c == '/' || c == ' ' || c == '?' || c == '=' || c == '&' || c == '.' || c == ':' {
            push_operation_segment(&segment, &mut out);
            segment.clear();
            out.push(c);
        } else {
            segment.push(c);
        }
    }
    push_operation_segment(&segment, &mut out);
    out
}

/// An exception type as grouping compares it: the bare type name, without
/// the module, package or namespace that qualifies it and without Go's
/// pointer star. Instrumentations spell one exception differently: the
/// OpenTelemetry Python SDK's span events say `__main__.PaymentDeclined`
/// (or `app.errors.PaymentDeclined`) where its logging bridge says
/// `PaymentDeclined`, `ddtrace` says `builtins.ValueError` where OTel says
/// `ValueError`, Java sends `com.shop.PaymentDeclined`, Go
/// `*main.PaymentDeclined` or `*errors.errorString`. Generic arguments
/// (`*main.Err[main.T]`) stay, their dots are not qualifiers. Displays keep
/// the full name; only comparisons and fingerprints use this.
pub fn canonical_type(error_type: &str) -> &str {
    let name = error_type.trim().trim_start_matches('*');
    // qualifiers end before generic arguments or a signature start
    let head = name.find(['[', '<', '(']).unwrap_or(name.len());
    let start = name[..head]
        .rfind(['.', ':', '/', '\\'])
        .map_or(0, |separator| separator + 1);
    match &name[start..] {
        "" => error_type.trim(),
        bare => bare,
    }
}

/// Whether two exception types name the same exception (see
/// [`canonical_type`]).
pub fn same_type(a: &str, b: &str) -> bool {
    canonical_type(a) == canonical_type(b)
}

fn push_operation_segment(segment: &str, out: &mut String) {
    let is_number = !segment.is_empty() && segment.chars().all(|c| c.is_ascii_digit());
    let is_hex_id = segment.len() >= 8
        && segment.chars().all(|c| c.is_ascii_hexdigit())
        && segment.chars().any(|c| c.is_ascii_digit());
    if is_number || is_hex_id || is_uuid(segment) {
        out.push_str("<id>");
    } else {
        out.push_str(segment);
    }
}

/// `'abc'`, `"abc"` and `` `abc` `` become `<str>`; apostrophes inside words
/// (`can't`) are left alone.
fn mask_quoted(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        let opens =
            matches!(c, '\'' | '"' | '`') && (index == 0 || !chars[index - 1].is_alphanumeric());
        if opens
            && let Some(length) = chars[index + 1..].iter().position(|next| *next == c)
            && length <= 200
        {
            out.push_str("<str>");
            index += length + 2;
            continue;
        }
        out.push(c);
        index += 1;
    }
    out
}

fn is_edge_punctuation(c: char) -> bool {
    matches!(
        c,
        '(' | ')' | '[' | ']' | '{' | '}' | ',' | ';' | ':' | '.' | '!' | '?' | '<' | '>' | '='
    )
}

fn push_word(word: &str, out: &mut String) {
    // placeholders made by mask_quoted pass through
    if word.contains("<str>") && word.replace("<str>", "").chars().all(is_edge_punctuation) {
        out.push_str(word);
        return;
    }
    let start = word
        .find(|c: char| !is_edge_punctuation(c))
        .unwrap_or(word.len());
    let end = word
        .rfind(|c: char| !is_edge_punctuation(c))
        .map_or(start, |index| {
            index + word[index..].chars().next().map_or(1, char::len_utf8)
        });
    let (prefix, core, suffix) = (
        &word[..start],
        &word[start..end.max(start)],
        &word[end.max(start)..],
    );
    out.push_str(prefix);
    if let Some(url) = mask_url(core) {
        out.push_str(&url);
    } else if let Some((key, value)) = core.split_once('=')
        && !key.is_empty()
        && !value.is_empty()
    {
        // key=value pairs: keep the key, classify the value
        out.push_str(key);
        out.push('=');
        push_core(value, out);
    } else {
        push_core(core, out);
    }
    out.push_str(suffix);
}

fn push_core(core: &str, out: &mut String) {
    if let Some(mask) = classify(core) {
        out.push_str(mask);
    } else if let Some(url) = mask_url(core) {
        out.push_str(&url);
    } else {
        push_digit_runs_masked(core, out);
    }
}

/// A placeholder for a word that is entirely one variable kind.
fn classify(core: &str) -> Option<&'static str> {
    if core.is_empty() {
        return None;
    }
    if is_uuid(core) {
        return Some("<uuid>");
    }
    if is_email(core) {
        return Some("<email>");
    }
    if is_timestamp(core) {
        return Some("<ts>");
    }
    if is_ipv4(core) || is_ipv6(core) {
        return Some("<ip>");
    }
    if is_duration(core) {
        return Some("<dur>");
    }
    if is_number(core) {
        return Some("<num>");
    }
    if is_hex(core) {
        return Some("<hex>");
    }
    None
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups.iter().map(|group| group.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|group| group.bytes().all(|byte| byte.is_ascii_hexdigit()))
}

fn is_email(text: &str) -> bool {
    match text.split_once('@') {
        Some((user, domain)) => !user.is_empty() && domain.contains('.') && !domain.contains('@'),
        None => false,
    }
}

/// `2024-05-01`, `2024-05-01T10:00:00Z`, `10:00:00.123`.
fn is_timestamp(text: &str) -> bool {
    let bytes = text.as_bytes();
    let date = bytes.len() >= 10
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[7] == b'-';
    let time = bytes.len() >= 8
        && bytes[..2].iter().all(u8::is_ascii_digit)
        && bytes[2] == b':'
        && bytes[5] == b':';
    date || time
}

fn is_ipv4(text: &str) -> bool {
    let host = text.split_once(':').map_or(text, |(host, _)| host);
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|part| {
            !part.is_empty() && part.len() <= 3 && part.bytes().all(|b| b.is_ascii_digit())
        })
}

fn is_ipv6(text: &str) -> bool {
    // `[fe80::1]:443`: the bracketed host is the address
    let text = text
        .split_once("]:")
        .map_or(text, |(host, _)| host)
        .trim_matches(['[', ']']);
    text.matches(':').count() >= 2
        && text
            .bytes()
            .all(|byte| byte.is_ascii_hexdigit() || byte == b':')
        && text.bytes().any(|byte| byte.is_ascii_hexdigit())
}

/// A number with a time unit: `30s`, `1.5ms`, `250µs`, `2h`.
fn is_duration(text: &str) -> bool {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    !number.is_empty()
        && number.bytes().any(|byte| byte.is_ascii_digit())
        && matches!(
            unit,
            "ns" | "us" | "µs" | "ms" | "s" | "m" | "h" | "d" | "sec" | "secs" | "min" | "mins"
        )
}

fn is_number(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+', '#']).unwrap_or(text);
    !body.is_empty()
        && body.bytes().any(|byte| byte.is_ascii_digit())
        && body
            .bytes()
            .all(|byte| byte.is_ascii_digit() || byte == b'.' || byte == b',' || byte == b'_')
}

/// `0x7f3a` or a long run of hex digits with at least one digit (hashes, ids).
fn is_hex(text: &str) -> bool {
    if let Some(rest) = text.strip_prefix("0x") {
        return !rest.is_empty() && rest.bytes().all(|byte| byte.is_ascii_hexdigit());
    }
    text.len() >= 8
        && text.bytes().all(|byte| byte.is_ascii_hexdigit())
        && text.bytes().any(|byte| byte.is_ascii_digit())
}

/// `https://api.example.com/users/42/orders?id=7` →
/// `https://api.example.com/users/<*>/orders`: the host stays, path
/// segments with digits are masked, the query goes.
fn mask_url(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    // schemes: a letter, then letters, digits, `+`, `-`, `.` (`s3`, `git+ssh`)
    let valid_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'-' | b'.'));
    if !valid_scheme {
        return None;
    }
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let mut segments = rest.split('/');
    let host = segments.next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    let mut out = format!("{scheme}://{host}");
    for segment in segments {
        out.push('/');
        if segment.bytes().any(|byte| byte.is_ascii_digit()) {
            out.push_str("<*>");
        } else {
            out.push_str(segment);
        }
    }
    Some(out)
}

/// `order_8812` → `order_<num>`; words without digits unchanged.
fn push_digit_runs_masked(core: &str, out: &mut String) {
    let mut in_digits = false;
    for c in core.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push_str("<num>");
                in_digits = true;
            }
        } else {
            in_digits = false;
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Input → normalized, one case a line, reviewed as a snapshot.
    #[test]
    fn test_normalization_table() {
        let cases = [
            "failed to process item 8812: timeout after 30s",
            "failed to process item 17: timeout after 1.5ms",
            "user 'alice@example.com' not found",
            "user alice@example.com not found",
            "KeyError: 'user_42'",
            "order 3f2b9c1e-8a7d-4e2f-9b1c-0d5e6f7a8b9c was already paid",
            "connect to 10.0.3.17:5432 failed: connection refused",
            "dial tcp [fe80::1]:443: i/o timeout",
            "GET https://api.example.com/v1/users/42/orders?page=3 returned 503",
            "upload of chunk 7 to s3://reports/run-311 failed",
            "checksum mismatch: expected 9f86d081884c7d65 got 0x7f3a",
            "deadline at 2024-05-01T10:00:00Z exceeded by 250ms",
            "can't parse \"12,5 EUR\" as amount (row 7)",
            "retry #3 of job=nightly-export-2024 failed",
            "index out of range [5] with length 3",
            "payment declined",
            "",
        ];
        let table: Vec<String> = cases
            .iter()
            .map(|case| format!("{case:?} => {:?}", normalize_message(case)))
            .collect();
        insta::assert_snapshot!(table.join("\n"));
    }

    #[test]
    fn test_varying_ids_normalize_equal() {
        assert_eq!(
            normalize_message("order 8812 of customer c-77 failed"),
            normalize_message("order 17 of customer c-1234 failed")
        );
    }

    #[test]
    fn test_long_and_odd_input_does_not_panic() {
        let long = "é'\"`x".repeat(5_000);
        let _ = normalize_message(&long);
        let _ = normalize_message("'''\"\"```::==@@//");
    }

    #[test]
    fn test_canonical_type_drops_qualifiers_of_every_language() {
        let cases = [
            ("__main__.PaymentDeclined", "PaymentDeclined"),
            ("app.errors.PaymentDeclined", "PaymentDeclined"),
            ("builtins.ValueError", "ValueError"),
            ("PaymentDeclined", "PaymentDeclined"),
            ("com.shop.PaymentDeclined", "PaymentDeclined"),
            ("java.lang.IllegalStateException", "IllegalStateException"),
            ("com.shop.Orders$Declined", "Orders$Declined"),
            ("*errors.errorString", "errorString"),
            ("*main.PaymentDeclined", "PaymentDeclined"),
            ("main.PaymentDeclined", "PaymentDeclined"),
            ("*github.com/shop/pay.Declined", "Declined"),
            ("*main.Err[main.Order]", "Err[main.Order]"),
            ("std::io::Error", "Error"),
            ("App\\Exceptions\\Declined", "Declined"),
            (
                "System.InvalidOperationException",
                "InvalidOperationException",
            ),
            ("Error", "Error"),
            ("TypeError", "TypeError"),
            ("500", "500"),
            (" ERROR ", "ERROR"),
            ("", ""),
            ("weird.", "weird."),
        ];
        for (error_type, canonical) in cases {
            assert_eq!(canonical_type(error_type), canonical, "{error_type}");
        }
        assert!(same_type("__main__.PaymentDeclined", "PaymentDeclined"));
        assert!(!same_type("PaymentDeclined", "CardExpired"));
    }

    #[test]
    fn test_operation_names_mask_ids_but_keep_routes() {
        assert_eq!(normalize_operation("GET /items/8812"), "GET /items/<id>");
        assert_eq!(
            normalize_operation("GET /orders/3fa85f64-5717-4562-b3fc-2c963f66afa6/lines"),
            "GET /orders/<id>/lines"
        );
        assert_eq!(normalize_operation("GET /users/me"), "GET /users/me");
        assert_eq!(normalize_operation("/objects/deadbeef01"), "/objects/<id>");
        assert_eq!(normalize_operation("支払い処理"), "支払い処理");
        assert_eq!(normalize_operation("Checkout.Pay"), "Checkout.Pay");
    }
}
