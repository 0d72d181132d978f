//! Stack parsing, message normalization and fingerprinting never panic on
//! arbitrary text (a cheap stand-in for the `error_text` fuzz target that
//! runs with every test run).

use ashiato_errors::fingerprint::{Fingerprint, FingerprintInput};
use ashiato_errors::normalize::normalize_message;
use ashiato_errors::stack::parse;

/// Fragments that steer the parsers into their branches, glued at random.
const PIECES: &[&str] = &[
    "at ",
    "(",
    ")",
    ":",
    "::",
    " in ",
    "File \"",
    "\", line ",
    ", in ",
    "\n",
    "\t",
    "    ",
    "0x",
    "+0x1f",
    "goroutine 1 [running]:\n",
    "main.main()",
    ".go:",
    ".java:",
    ".js:1:2",
    ":line ",
    ".rb:",
    ":in `",
    "'",
    "\"",
    "`",
    "Caused by: ",
    "  12: ",
    "::h0123456789abcdef",
    "@",
    "://",
    "/",
    "?",
    "=",
    "-",
    "é",
    "日本",
    "1",
    "42",
    "ff",
    "[",
    "]",
    "created by ",
    " in goroutine",
    "<",
    ">",
    "$$",
    "node:",
    "site-packages/",
    "\u{0}",
    "\r\n",
];

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn test_random_text_never_panics() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3_000 {
        let length = (rng.next() % 60) as usize;
        let text: String = (0..length)
            .map(|_| PIECES[(rng.next() % PIECES.len() as u64) as usize])
            .collect();
        let frames = parse(&text);
        let _ = normalize_message(&text);
        let fingerprint = Fingerprint::compute(&FingerprintInput {
            service: "s",
            environment: "",
            error_type: "T",
            message: &text,
            operation: "op",
            frames: &frames,
            custom: None,
        });
        assert_eq!(fingerprint.hash.len(), 32);
    }
}
