//! `ykt cardholder add|show|search|import|export`: cardholders (持卡人, R-B2) through the
//! admin API. Import sends the registrar's file as it is; the server validates every line.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::{Value, json};

use super::client::{Api, ApiArgs, cell, encode, items, read_sheet, table};

#[derive(clap::Subcommand)]
pub enum Args {
    /// Add a cardholder.
    Add {
        /// 学工号 (student or staff number), unique.
        #[arg(long)]
        number: String,
        /// 姓名.
        #[arg(long)]
        name: String,
        /// 类别: student, staff, temporary, retired, other (or 学生, 教职工, …).
        #[arg(long, default_value = "student")]
        kind: String,
        /// 部门.
        #[arg(long, default_value = "")]
        department: String,
        /// 身份证号 (18 characters with a right check digit, or 15 digits).
        #[arg(long)]
        id_number: Option<String>,
        /// 电话.
        #[arg(long)]
        phone: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// One cardholder with their cards.
    Show {
        number: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Search by name prefix, number, card number or display number (empty: everyone).
    Search {
        #[arg(default_value = "")]
        query: String,
        /// Most results.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Import the registrar's file (.csv or .xlsx): all lines or none.
    Import {
        file: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Export every cardholder (or a search) to a file.
    Export {
        #[arg(long, value_parser = ["csv", "xlsx"])]
        format: String,
        #[arg(long)]
        out: PathBuf,
        /// Only the cardholders this search finds.
        #[arg(long, default_value = "")]
        query: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn row(h: &Value) -> Vec<String> {
    [
        "number",
        "name",
        "kind_title",
        "department",
        "id_number",
        "phone",
        "status_title",
    ]
    .iter()
    .map(|k| cell(h, k))
    .collect()
}

const HEADERS: [&str; 7] = ["学工号", "姓名", "类别", "部门", "身份证号", "电话", "状态"];

pub fn run(args: Args) -> anyhow::Result<()> {
    match args {
        Args::Add {
            number,
            name,
            kind,
            department,
            id_number,
            phone,
            api,
        } => {
            let api = Api::new(&api)?;
            let body = json!({"number": number, "name": name, "kind": kind,
                "department": department, "id_number": id_number, "phone": phone});
            let h = api.post("/cardholders", Some(&body))?;
            api.print(&h, |h| {
                println!("cardholder {} {} added", cell(h, "number"), cell(h, "name"))
            })
        }
        Args::Show { number, api } => {
            let api = Api::new(&api)?;
            let h = api.get(&format!("/cardholders/{}", encode(&number)))?;
            api.print(&h, |h| {
                print!("{}", table(&HEADERS, &[row(h)]));
                let cards: Vec<Vec<String>> = items(&h["cards"])
                    .iter()
                    .map(|c| vec![cell(c, "no"), cell(c, "display_no"), cell(c, "status")])
                    .collect();
                print!("{}", table(&["card", "display no", "status"], &cards));
            })
        }
        Args::Search { query, limit, api } => {
            let api = Api::new(&api)?;
            let found = api.get(&format!("/cardholders?q={}&limit={limit}", encode(&query)))?;
            api.print(&found, |f| {
                let rows: Vec<Vec<String>> = items(&f["cardholders"]).iter().map(row).collect();
                print!("{}", table(&HEADERS, &rows));
            })
        }
        Args::Import { file, api } => {
            let api = Api::new(&api)?;
            let (media, bytes) = read_sheet(&file)?;
            let r = api.post_raw("/cardholders/import", media, &bytes)?;
            api.print(&r, |r| {
                println!(
                    "added {}, updated {}, unchanged {}",
                    cell(r, "added"),
                    cell(r, "updated"),
                    cell(r, "unchanged")
                )
            })
        }
        Args::Export {
            format,
            out,
            query,
            api,
        } => {
            let api = Api::new(&api)?;
            let bytes = api.get_raw(&format!(
                "/cardholders/export?format={format}&q={}",
                encode(&query)
            ))?;
            std::fs::write(&out, &bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("{} bytes written to {}", bytes.len(), out.display());
            Ok(())
        }
    }
}
