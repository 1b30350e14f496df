//! Writes the generated CRD YAML (see `gamecell_operator::crdgen`) under the given root
//! (default: the current directory), or with `--check` fails when the files on disk differ.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut check = false;
    let mut root = PathBuf::from(".");
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" => check = true,
            "-h" | "--help" => {
                println!(
                    "usage: crdgen [--check] [ROOT]\nwrites config/crd/*.yaml and the chart's CRD templates under ROOT"
                );
                return ExitCode::SUCCESS;
            }
            other => root = PathBuf::from(other),
        }
    }
    let files = match gamecell_operator::crdgen::generated_files() {
        Ok(files) => files,
        Err(e) => {
            eprintln!("crdgen: cannot render the CRDs: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stale = 0;
    for file in files {
        let path = root.join(&file.path);
        if check {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(file.content.as_str()) {
                eprintln!("crdgen: {} is out of date", file.path);
                stale += 1;
            }
            continue;
        }
        if let Some(dir) = path.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            eprintln!("crdgen: cannot create {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
        if let Err(e) = std::fs::write(&path, &file.content) {
            eprintln!("crdgen: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", file.path);
    }
    if stale > 0 {
        eprintln!("crdgen: {stale} file(s) out of date; run `make crds` (cargo run --bin crdgen)");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
