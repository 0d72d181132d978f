//! Bounded decompression: round trips for every accepted encoding, the
//! limit enforced while decompressing (bombs), and corrupt input.

#![allow(clippy::unwrap_used)] // test helpers may unwrap, like the tests themselves

use std::io::{self, Read, Write};

use ashiato_otlp::{Compression, DecompressError, decompress};
use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};

const MIB: usize = 1024 * 1024;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut encoder = DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// A realistic body: some structure, some repetition.
fn sample() -> Vec<u8> {
    (0..20_000u32)
        .flat_map(|index| format!("span-{index}:{};", index % 97).into_bytes())
        .collect()
}

/// A test encoder: plain bytes in, compressed bytes out.
type Encoder = fn(&[u8]) -> Vec<u8>;

fn encodings() -> Vec<(&'static str, Compression, Encoder)> {
    vec![
        ("identity", Compression::Identity, |data| data.to_vec()),
        ("gzip", Compression::Gzip, gzip),
        ("zlib deflate", Compression::Deflate, zlib),
        ("raw deflate", Compression::Deflate, raw_deflate),
        ("zstd", Compression::Zstd, zstd),
        ("zstd level 19", Compression::Zstd, |data| {
            zstd::encode_all(data, 19).unwrap()
        }),
    ]
}

#[test]
fn test_round_trips() {
    let data = sample();
    for (name, compression, encode) in encodings() {
        let decoded = decompress(compression, &encode(&data), 16 * MIB)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(decoded, data, "{name}");
        let empty = decompress(compression, &encode(b""), 16 * MIB)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert!(empty.is_empty(), "{name}");
    }
}

#[test]
fn test_multi_member_gzip_is_read_to_the_end() {
    let mut body = gzip(b"first member, ");
    body.extend(gzip(b"second member"));
    assert_eq!(
        decompress(Compression::Gzip, &body, MIB).unwrap(),
        b"first member, second member"
    );
}

#[test]
fn test_limit_is_exact() {
    let data = sample();
    for (name, compression, encode) in encodings() {
        let body = encode(&data);
        assert_eq!(
            decompress(compression, &body, data.len()).unwrap(),
            data,
            "{name}"
        );
        let error = decompress(compression, &body, data.len() - 1).unwrap_err();
        assert!(
            matches!(error, DecompressError::TooLarge { limit } if limit == data.len() - 1),
            "{name}: {error}"
        );
    }
}

/// 100 MiB of zeros compresses to about 100 KiB; with a 1 MiB limit the
/// decoder must stop at the limit, not inflate everything first.
#[test]
fn test_bombs_stop_at_the_limit() {
    let bomb_size = 100 * MIB as u64;
    let zeros = || io::repeat(0).take(bomb_size);

    let mut gzip_bomb = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    io::copy(&mut zeros(), &mut gzip_bomb).unwrap();
    let gzip_bomb = gzip_bomb.finish().unwrap();

    let mut zlib_bomb = ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    io::copy(&mut zeros(), &mut zlib_bomb).unwrap();
    let zlib_bomb = zlib_bomb.finish().unwrap();

    let mut zstd_bomb = Vec::new();
    zstd::stream::copy_encode(zeros(), &mut zstd_bomb, 1).unwrap();

    for (name, compression, bomb) in [
        ("gzip", Compression::Gzip, gzip_bomb),
        ("deflate", Compression::Deflate, zlib_bomb),
        ("zstd", Compression::Zstd, zstd_bomb),
    ] {
        assert!(bomb.len() < MIB, "{name} bomb is {} bytes", bomb.len());
        let error = decompress(compression, &bomb, MIB).unwrap_err();
        assert!(
            matches!(error, DecompressError::TooLarge { limit: MIB }),
            "{name}: {error}"
        );
        assert_eq!(
            error.to_string(),
            "request body exceeds the limit of 1048576 bytes after decompression"
        );
    }
}

#[test]
fn test_corrupt_input_is_reported() {
    let data = sample();
    let truncated_gzip = {
        let body = gzip(&data);
        body[..body.len() / 2].to_vec()
    };
    let cases: Vec<(&str, Compression, Vec<u8>)> = vec![
        (
            "gzip garbage",
            Compression::Gzip,
            b"definitely not gzip".to_vec(),
        ),
        ("gzip truncated", Compression::Gzip, truncated_gzip),
        ("deflate garbage", Compression::Deflate, vec![0xff; 64]),
        (
            "zlib header, garbage stream",
            Compression::Deflate,
            vec![0x78, 0x9c, 0xff, 0xff, 0xff],
        ),
        (
            "zstd garbage",
            Compression::Zstd,
            b"not zstd at all".to_vec(),
        ),
        (
            "zstd truncated",
            Compression::Zstd,
            zstd(&data)[..20].to_vec(),
        ),
    ];
    for (name, compression, body) in cases {
        let error = decompress(compression, &body, MIB).unwrap_err();
        assert!(
            matches!(error, DecompressError::Corrupt(_)),
            "{name}: {error}"
        );
        assert!(
            error.to_string().starts_with("invalid compressed body: "),
            "{name}: {error}"
        );
    }
}
