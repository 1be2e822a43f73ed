//! `-o json|yaml`, as kubectl takes it, on every command that prints a document;
//! `--json` stays as the older spelling of `-o json`.

use clap::{Args, ValueEnum};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Yaml,
}

#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Print one document in this format instead of text (as kubectl's -o).
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<Format>,
    /// The same as -o json.
    #[arg(long, conflicts_with = "output")]
    pub json: bool,
}

impl OutputArgs {
    /// The document format asked for, or `None` for text.
    pub fn format(&self) -> Option<Format> {
        self.output.or(self.json.then_some(Format::Json))
    }

    /// Prints `value` in the format asked for; `false` when text was asked for, so the
    /// caller prints its own.
    pub fn print<T: Serialize>(&self, value: &T) -> anyhow::Result<bool> {
        match self.format() {
            None => Ok(false),
            Some(format) => {
                print!("{}", render(value, format)?);
                Ok(true)
            }
        }
    }
}

pub fn render<T: Serialize>(value: &T, format: Format) -> anyhow::Result<String> {
    Ok(match format {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(value)?),
        Format::Yaml => serde_norway::to_string(value)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        out: OutputArgs,
    }

    #[test]
    fn dash_o_and_json_choose_the_format_and_yaml_reads_back_as_the_same_document() {
        let format = |args: &[&str]| {
            Cli::try_parse_from([&["x"], args].concat())
                .map(|c| c.out.format())
                .map_err(|e| e.kind())
        };
        assert_eq!(format(&[]), Ok(None));
        assert_eq!(format(&["-o", "yaml"]), Ok(Some(Format::Yaml)));
        assert_eq!(format(&["--output=json"]), Ok(Some(Format::Json)));
        assert_eq!(format(&["--json"]), Ok(Some(Format::Json)));
        assert!(format(&["-o", "yaml", "--json"]).is_err());
        assert!(format(&["-o", "wide"]).is_err());
        let doc = serde_json::json!({"service": "shop/checkout", "gates": [1, 2], "ok": true});
        let yaml = render(&doc, Format::Yaml).unwrap();
        let back: serde_json::Value = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(back, doc);
    }
}
