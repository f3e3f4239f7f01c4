//! Renders results files into a page without building the whole CLI (which compiles candle):
//! `cargo run -p metarec-report --example render -- OUT.html RESULTS.json...`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let out = args
        .next()
        .ok_or("usage: render OUT.html RESULTS.json...")?;
    let mut files = Vec::new();
    for path in args {
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        files.push((path.display().to_string(), bytes));
    }
    let page = metarec_report::render_report("metarec report", &files)?;
    std::fs::write(&out, page.to_html())?;
    println!("{}", out.display());
    Ok(())
}
