//! Where the bytes of sealed segments go: compressed and uncompressed size
//! of every column, summed over the column chunks of all span (or log)
//! segments of a data directory, from the Parquet footers alone.
//!
//! Columns are summed by name (segments may differ in their promoted
//! attribute columns); a promoted column's line names its attribute key.
//!
//! `cargo run --release -p ashiato-store --example segment_columns -- DATA_DIR [spans|logs]`

use std::collections::BTreeMap;
use std::error::Error;
use std::fs::File;
use std::path::PathBuf;

use parquet::arrow::parquet_to_arrow_schema;
use parquet::file::reader::{FileReader, SerializedFileReader};

/// The Arrow field metadata entry naming a promoted column's attribute key.
const FIELD_KEY: &str = "ashiato.attribute";

#[derive(Default)]
struct ColumnBytes {
    compressed: i64,
    uncompressed: i64,
    encodings: String,
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: DATA_DIR [spans|logs]")?,
    );
    let kind = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "spans".to_owned());
    // Keyed by first position seen, then name, so the table keeps file order.
    let mut columns: BTreeMap<(usize, String), ColumnBytes> = BTreeMap::new();
    let mut rows = 0i64;
    let mut file_bytes = 0u64;
    let mut files = 0;
    for entry in std::fs::read_dir(dir.join("segments"))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.starts_with(&format!("{kind}-")) || !name.ends_with(".parquet") {
            continue;
        }
        files += 1;
        file_bytes += std::fs::metadata(&path)?.len();
        let reader = SerializedFileReader::new(File::open(&path)?)?;
        let file_metadata = reader.metadata().file_metadata();
        let schema = parquet_to_arrow_schema(
            file_metadata.schema_descr(),
            file_metadata.key_value_metadata(),
        )?;
        for group in reader.metadata().row_groups() {
            rows += group.num_rows();
            for (index, chunk) in group.columns().iter().enumerate() {
                let mut name = chunk.column_path().string();
                if let Some(key) = schema
                    .field_with_name(&name)
                    .ok()
                    .and_then(|field| field.metadata().get(FIELD_KEY))
                {
                    name = format!("{name} ({key})");
                }
                let position = columns
                    .keys()
                    .find(|(_, seen)| *seen == name)
                    .map_or(index, |(position, _)| *position);
                let bytes = columns.entry((position, name)).or_default();
                bytes.compressed += chunk.compressed_size();
                bytes.uncompressed += chunk.uncompressed_size();
                if bytes.encodings.is_empty() {
                    bytes.encodings = format!("{:?}", chunk.encodings().collect::<Vec<_>>());
                }
            }
        }
    }
    let per_row = |bytes: i64| bytes as f64 / rows.max(1) as f64;
    println!("{files} {kind} segments, {rows} rows, {file_bytes} bytes on disk");
    println!(
        "{:<28} {:>12} {:>10} {:>12} {:>10}  encodings",
        "column", "compressed", "B/row", "raw", "raw B/row"
    );
    let mut total = 0;
    for ((_, name), bytes) in &columns {
        total += bytes.compressed;
        println!(
            "{name:<28} {:>12} {:>10.2} {:>12} {:>10.2}  {}",
            bytes.compressed,
            per_row(bytes.compressed),
            bytes.uncompressed,
            per_row(bytes.uncompressed),
            bytes.encodings
        );
    }
    println!(
        "{:<28} {total:>12} {:>10.2}   (file: {:.2} B/row)",
        "all columns",
        per_row(total),
        file_bytes as f64 / rows.max(1) as f64
    );
    Ok(())
}
