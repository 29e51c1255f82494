//! The one output convention of the listing commands (`keys list`, `dlq list`, `status`).
//!
//! Every listing is a [`Listing`]: named columns and rows of JSON values. `--output table` (the
//! default) prints it as a table for people, each column as wide as its widest cell, the columns
//! two spaces apart; `--output json` prints it for scripts, one JSON object per row and line (JSON
//! lines), or one JSON document where a command has one (`status`). No command formats its own
//! rows. A listing holds only what its command puts in it: `keys list` never puts a key's secret
//! or hash there.

use serde_json::{Map, Value};

/// How a listing is printed: the global `--output` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// An aligned table with a header line, for a terminal.
    #[default]
    Table,
    /// JSON for scripts: one object per row and line, or one document (`status`).
    Json,
}

/// Rows of `N` named columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing<const N: usize> {
    columns: [&'static str; N],
    rows: Vec<[Value; N]>,
}

impl<const N: usize> Listing<N> {
    /// An empty listing with these column names (also the JSON objects' member names).
    pub fn new(columns: [&'static str; N]) -> Self {
        Self {
            columns,
            rows: Vec::new(),
        }
    }

    /// Adds a row, one value per column; `null` is shown as `-` in a table.
    pub fn push(&mut self, row: [Value; N]) {
        self.rows.push(row);
    }

    /// The aligned table: a header line, then one line per row, no trailing spaces.
    pub fn table(&self) -> String {
        let header: [String; N] = self.columns.map(str::to_owned);
        let cells: Vec<[String; N]> = self.rows.iter().map(|row| row.clone().map(|v| cell(&v))).collect();
        let mut widths = [0usize; N];
        for line in std::iter::once(&header).chain(&cells) {
            for (width, text) in widths.iter_mut().zip(line) {
                *width = (*width).max(text.chars().count());
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&header).chain(&cells) {
            let mut text = String::new();
            for (i, (cell, width)) in line.iter().zip(widths).enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                let pad = width.saturating_sub(cell.chars().count());
                text.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }

    /// One JSON object per row, one per line, members named after the columns.
    pub fn json_lines(&self) -> String {
        let mut out = String::new();
        for row in &self.rows {
            let object: Map<String, Value> = self
                .columns
                .iter()
                .zip(row)
                .map(|(c, v)| ((*c).to_owned(), v.clone()))
                .collect();
            out.push_str(&Value::Object(object).to_string());
            out.push('\n');
        }
        out
    }

    /// The listing in `format`, JSON as JSON lines.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.table(),
            Format::Json => self.json_lines(),
        }
    }

    /// The listing in `format`, JSON as the one `document` (for a command whose answer is one
    /// object rather than rows, such as `status`).
    pub fn render_document(&self, format: Format, document: &Value) -> String {
        match format {
            Format::Table => self.table(),
            Format::Json => format!("{document}\n"),
        }
    }
}

/// Writes a rendered listing to standard output; a closed pipe is an error, not a panic.
pub fn emit(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// A value as a table cell: strings bare, `null` as `-`, anything else as compact JSON; control
/// characters escaped, so that a cell is one line and cannot drive the terminal.
fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Listing<3> {
        let mut l = Listing::new(["id", "tenant", "label"]);
        l.push([json!("key_1"), json!("acme-corporation"), json!("ci")]);
        l.push([json!("key_0123456789"), json!("a"), Value::Null]);
        l
    }

    #[test]
    fn table_columns_line_up_with_the_header() {
        let table = sample().table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        // Every column starts at the same offset on every line, the header's.
        for column in ["tenant", "label"] {
            let at = lines[0].find(column).unwrap();
            for line in &lines[1..] {
                assert_eq!(line.as_bytes()[at - 1], b' ', "{table}");
                assert_ne!(line.as_bytes()[at], b' ', "{table}");
                assert_eq!(&line[at - 2..at], "  ", "{table}");
            }
        }
        assert_eq!(
            table,
            "id              tenant            label\n\
             key_1           acme-corporation  ci\n\
             key_0123456789  a                 -\n"
        );
        assert!(table.lines().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn an_empty_table_is_its_header() {
        assert_eq!(Listing::new(["a", "bb"]).table(), "a  bb\n");
        assert_eq!(Listing::new(["a", "bb"]).json_lines(), "");
    }

    #[test]
    fn json_is_one_object_per_row_and_line() {
        let out = sample().render(Format::Json);
        let rows: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(
            rows,
            [
                json!({"id": "key_1", "tenant": "acme-corporation", "label": "ci"}),
                json!({"id": "key_0123456789", "tenant": "a", "label": null}),
            ]
        );
    }

    #[test]
    fn a_document_replaces_the_rows_in_json_only() {
        let doc = json!({"queue": {"visible": 1}});
        assert_eq!(sample().render_document(Format::Json, &doc), format!("{doc}\n"));
        assert_eq!(sample().render_document(Format::Table, &doc), sample().table());
    }

    #[test]
    fn cells_are_one_line_and_carry_no_terminal_escapes() {
        let mut l = Listing::new(["label", "n"]);
        l.push([json!("a\nb\u{1b}[31m"), json!({"k": 1})]);
        let table = l.table();
        assert_eq!(table.lines().count(), 2, "{table}");
        assert!(!table.contains('\u{1b}'));
        assert!(table.contains("a\\nb\\u{1b}[31m"), "{table}");
        assert!(table.contains(r#"{"k":1}"#), "{table}");
    }
}
