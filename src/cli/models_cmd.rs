//! `serena models list|pull|add|verify|path|rm`.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Subcommand;
use serena::error::ExitCode;
use serena::models::{self, download, ModelKind};

use super::{Ctx, UsageError};

#[derive(Debug, Subcommand)]
pub enum ModelsCmd {
    /// List the catalog and the model files found on this machine.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Download a catalog model (resumes interrupted downloads, verifies the SHA-256).
    Pull {
        /// Catalog name, e.g. tiny.en, base.en, silero-v6.2.0, qwen2.5-0.5b-instruct.
        name: Option<String>,
        /// Download from this URL instead of the catalog (needs --sha256).
        #[arg(long, requires = "sha256")]
        url: Option<String>,
        /// Expected SHA-256 of the file at --url.
        #[arg(long)]
        sha256: Option<String>,
    },
    /// Import a model file you downloaded yourself (its format is checked first).
    Add {
        /// The file.
        path: PathBuf,
    },
    /// Check model files: structure, and checksum against the catalog.
    Verify {
        /// Files or catalog names; none: every model file found.
        models: Vec<String>,
        /// Fail when a catalog model's checksum differs from the catalog's.
        #[arg(long)]
        strict: bool,
    },
    /// Print the model search directories, or where a model resolves to.
    Path {
        /// A catalog name or file.
        name: Option<String>,
    },
    /// Remove a model from Serena's own model directory.
    Rm {
        /// Catalog name or file name.
        name: String,
    },
}

pub fn run(ctx: &Ctx, cmd: ModelsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelsCmd::List { json } => list(ctx, json),
        ModelsCmd::Pull { name, url, sha256 } => pull(ctx, name, url, sha256),
        ModelsCmd::Add { path } => {
            let dest = models::add(&path, &ctx.dirs)?;
            println!("{}", dest.display());
            Ok(ExitCode::Ok)
        }
        ModelsCmd::Verify { models, strict } => verify(ctx, models, strict),
        ModelsCmd::Path { name } => {
            match name {
                None => {
                    for d in &ctx.dirs.search {
                        println!("{}", d.display());
                    }
                }
                Some(name) => {
                    let kind = ctx.catalog.get(&name).map(|e| e.kind);
                    let found = [ModelKind::Whisper, ModelKind::Vad, ModelKind::Llm]
                        .into_iter()
                        .filter(|k| kind.is_none_or(|want| want == *k))
                        .map(|k| models::resolve(&name, k, &ctx.dirs, &ctx.catalog))
                        .collect::<Vec<_>>();
                    match found.iter().find_map(|r| r.as_ref().ok()) {
                        Some(r) => println!("{}", r.path.display()),
                        None => match found.into_iter().next() {
                            Some(Err(e)) => return Err(e.into()),
                            _ => return Err(UsageError(format!("no model `{name}`")).into()),
                        },
                    }
                }
            }
            Ok(ExitCode::Ok)
        }
        ModelsCmd::Rm { name } => {
            let path = models::remove(&name, &ctx.dirs, &ctx.catalog)?;
            println!("removed {}", path.display());
            Ok(ExitCode::Ok)
        }
    }
}

fn list(ctx: &Ctx, json: bool) -> anyhow::Result<ExitCode> {
    let installed = models::installed(&ctx.dirs, &ctx.catalog);
    if json {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            #[serde(flatten)]
            entry: &'a models::Entry,
            installed: Vec<&'a PathBuf>,
        }
        let catalog: Vec<Row<'_>> = ctx
            .catalog
            .entries()
            .iter()
            .map(|entry| Row {
                entry,
                installed: installed
                    .iter()
                    .filter(|i| i.name.as_deref() == Some(entry.name.as_str()))
                    .map(|i| &i.path)
                    .collect(),
            })
            .collect();
        let local: Vec<serde_json::Value> = installed
            .iter()
            .map(|i| {
                serde_json::json!({
                    "path": i.path,
                    "name": i.name,
                    "ok": i.status.is_ok(),
                    "format": i.status.as_ref().ok(),
                    "problem": i.status.as_ref().err(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"catalog": catalog, "files": local}))?
        );
        return Ok(ExitCode::Ok);
    }
    println!(
        "{:<24} {:<8} {:>9}  {:<9} description",
        "name", "kind", "size", "here"
    );
    for e in ctx.catalog.entries() {
        let here = installed
            .iter()
            .any(|i| i.name.as_deref() == Some(e.name.as_str()) && i.status.is_ok());
        println!(
            "{:<24} {:<8} {:>9}  {:<9} {}",
            e.name,
            e.kind.to_string(),
            human_size(e.size),
            if here { "installed" } else { "" },
            e.description
        );
    }
    if !installed.is_empty() {
        println!(
            "\nModel files found (search order: {}):",
            models::display_dirs(&ctx.dirs.search)
        );
        for i in &installed {
            match &i.status {
                Ok(f) => println!("  ok    {}  {}", i.path.display(), f.describe()),
                Err(problem) => println!("  BAD   {}  {problem}", i.path.display()),
            }
        }
    }
    Ok(ExitCode::Ok)
}

fn human_size(bytes: u64) -> String {
    let mb = bytes as f64 / 1e6;
    if mb >= 1000.0 {
        format!("{:.1} GB", mb / 1000.0)
    } else {
        format!("{mb:.0} MB")
    }
}

fn pull(
    ctx: &Ctx,
    name: Option<String>,
    url: Option<String>,
    sha256: Option<String>,
) -> anyhow::Result<ExitCode> {
    let progress = std::io::stderr().is_terminal();
    let (url, dest, sha, size) = match (name, url, sha256) {
        (Some(name), None, None) => {
            let entry = ctx
                .catalog
                .get(&name)
                .ok_or_else(|| models::ModelError::UnknownName(name.clone()))?;
            let dest = ctx.dirs.own.join(entry.kind.subdir()).join(&entry.file);
            if dest.is_file() {
                eprintln!("checking {} ...", dest.display());
                if models::sha256_file(&dest)? == entry.sha256 {
                    println!("{}", dest.display());
                    return Ok(ExitCode::Ok);
                }
            }
            (
                entry.effective_url(),
                dest,
                entry.sha256.clone(),
                Some(entry.size),
            )
        }
        (name, Some(url), Some(sha)) => {
            let file = url
                .rsplit('/')
                .next()
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .or(name)
                .ok_or_else(|| UsageError("cannot tell a file name from --url".into()))?;
            let dest = ctx.dirs.own.join("downloads").join(file);
            (url, dest, sha.to_ascii_lowercase(), None)
        }
        _ => return Err(UsageError("give a catalog name, or --url with --sha256".into()).into()),
    };
    let path = download::fetch(&download::Request {
        url: &url,
        dest: &dest,
        sha256: &sha,
        size,
        progress,
    })
    .map_err(models::ModelError::from)?;
    // A custom download is checked for format and filed by kind.
    let final_path = if path.parent().and_then(|p| p.file_name()) == Some("downloads".as_ref()) {
        let filed = models::add(&path, &ctx.dirs)?;
        let _ = std::fs::remove_file(&path);
        filed
    } else {
        models::format::inspect(&path).map_err(models::ModelError::from)?;
        path
    };
    println!("{}", final_path.display());
    Ok(ExitCode::Ok)
}

fn verify(ctx: &Ctx, specs: Vec<String>, strict: bool) -> anyhow::Result<ExitCode> {
    let paths: Vec<PathBuf> = if specs.is_empty() {
        models::installed(&ctx.dirs, &ctx.catalog)
            .into_iter()
            .map(|i| i.path)
            .collect()
    } else {
        let mut out = Vec::new();
        for spec in specs {
            let p = PathBuf::from(&spec);
            if p.exists() {
                out.push(p);
            } else if let Some(entry) = ctx.catalog.get(&spec) {
                match ctx.dirs.find_entry(entry) {
                    Some(p) => out.push(p),
                    None => {
                        eprintln!(
                            "missing {spec}: not found in {}",
                            models::display_dirs(&ctx.dirs.search)
                        );
                        return Ok(ExitCode::Model);
                    }
                }
            } else {
                out.push(p);
            }
        }
        out
    };
    if paths.is_empty() {
        eprintln!("no model files found; `serena models path` shows where Serena looks");
        return Ok(ExitCode::Model);
    }
    let mut bad = 0;
    for path in &paths {
        match models::format::inspect(path) {
            Ok(format) => {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                let checksum = match ctx.catalog.by_file(name) {
                    Some(entry) => match models::sha256_file(path) {
                        Ok(sum) if sum == entry.sha256 => {
                            format!("sha256 matches catalog entry {}", entry.name)
                        }
                        Ok(_) => {
                            if strict {
                                bad += 1;
                            }
                            format!(
                                "sha256 differs from catalog entry {} (not the published file)",
                                entry.name
                            )
                        }
                        Err(e) => format!("cannot hash: {e}"),
                    },
                    None => "not a catalog file".into(),
                };
                println!(
                    "ok    {}: {}; {checksum}",
                    path.display(),
                    format.describe()
                );
            }
            Err(e) => {
                bad += 1;
                println!("BAD   {e}");
            }
        }
    }
    Ok(if bad > 0 {
        ExitCode::Model
    } else {
        ExitCode::Ok
    })
}
