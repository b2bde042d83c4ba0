//! Generates `crates/model/src/generated/` from AWS's IoT service model.
//!
//! Usage: `cargo run -p palisade-codegen [-- --model-dir DIR --out DIR]`. The output is
//! checked in and formatted with rustfmt; CI regenerates it and fails on any difference,
//! so everything here iterates in sorted order.

mod emit;
mod names;
mod shapes;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

pub struct Model {
    pub shapes: serde_json::Map<String, Value>,
    pub operations: serde_json::Map<String, Value>,
    pub paginators: serde_json::Map<String, Value>,
}

/// An implemented operation and the group its shapes are written to.
pub struct Implemented {
    pub name: String,
    pub group: String,
}

fn main() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut model_dir = root.join("../shared/aws-model");
    let mut out_dir = root.join("crates/model/src/generated");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--model-dir" => model_dir = args.next().context("--model-dir needs a value")?.into(),
            "--out" => out_dir = args.next().context("--out needs a value")?.into(),
            other => bail!("unknown argument {other}"),
        }
    }
    let model = load_model(&model_dir)?;
    let implemented = load_implemented(&root.join("codegen/implemented.txt"), &model)?;
    let files = emit::generate(&model, &implemented)?;
    write_files(&out_dir, &files)
}

fn load_model(dir: &Path) -> Result<Model> {
    let read = |name: &str| -> Result<Value> {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    };
    let service = read("iot-2015-05-28.service.json")?;
    let pag = read("iot-2015-05-28.paginators.json")?;
    let obj = |v: &Value, k: &str| -> Result<serde_json::Map<String, Value>> {
        v.get(k)
            .and_then(Value::as_object)
            .cloned()
            .with_context(|| format!("model has no '{k}' object"))
    };
    Ok(Model {
        shapes: obj(&service, "shapes")?,
        operations: obj(&service, "operations")?,
        paginators: obj(&pag, "pagination")?,
    })
}

fn load_implemented(path: &Path, model: &Model) -> Result<Vec<Implemented>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(group), None) = (parts.next(), parts.next(), parts.next()) else {
            bail!("implemented.txt: expected `Operation group`, got `{line}`");
        };
        if !model.operations.contains_key(name) {
            bail!("implemented.txt: {name} is not an operation of the model");
        }
        if !seen.insert(name.to_owned()) {
            bail!("implemented.txt: {name} listed twice");
        }
        out.push(Implemented {
            name: name.to_owned(),
            group: group.to_owned(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn write_files(out_dir: &Path, files: &BTreeMap<String, String>) -> Result<()> {
    std::fs::create_dir_all(out_dir)?;
    // Remove generated files that are no longer produced, so renames leave nothing behind.
    for entry in std::fs::read_dir(out_dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if path.extension().is_some_and(|e| e == "rs") && !files.contains_key(&name) {
            std::fs::remove_file(&path)?;
        }
    }
    let mut paths = Vec::new();
    for (name, body) in files {
        let path = out_dir.join(name);
        std::fs::write(&path, body)?;
        paths.push(path);
    }
    let status = Command::new("rustfmt")
        .args(["--edition", "2021"])
        .args(&paths)
        .status()
        .context("running rustfmt")?;
    if !status.success() {
        bail!("rustfmt failed on the generated code");
    }
    Ok(())
}
