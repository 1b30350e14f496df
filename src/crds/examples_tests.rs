//! Every manifest under `examples/cells/` parses into its kind and passes the CEL rules, and the
//! set covers every tier (the e2e suite also dry-runs them against a real API server).

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use super::gamecell::CellTier;
use super::{GameCell, MatchmakingPool, PlayerService};

/// Every YAML document in `examples/cells/`, with the file it came from.
fn example_documents() -> Vec<(String, serde_json::Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cells");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/cells exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    let mut docs = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("readable example");
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        for value in serde_saphyr::from_multiple::<serde_json::Value>(&text)
            .unwrap_or_else(|e| panic!("{name}: not valid YAML: {e}"))
        {
            if !value.is_null() {
                docs.push((name.clone(), value));
            }
        }
    }
    docs
}

fn parse<T: for<'de> Deserialize<'de>>(file: &str, value: serde_json::Value) -> T {
    serde_json::from_value(value)
        .unwrap_or_else(|e| panic!("{file}: does not match the schema: {e}"))
}

#[test]
fn every_example_is_valid_and_every_tier_is_shown() {
    let docs = example_documents();
    assert!(
        docs.len() >= 10,
        "expected a rich set of examples, found {}",
        docs.len()
    );
    let mut tiers = BTreeSet::new();
    let mut cells = BTreeSet::new();
    let mut bound = Vec::new();
    for (file, value) in docs {
        let kind = value["kind"].as_str().unwrap_or_default().to_owned();
        let result = match kind.as_str() {
            "GameCell" => {
                let cell: GameCell = parse(&file, value);
                tiers.insert(format!("{:?}", cell.spec.tier));
                cells.insert(cell.metadata.name.clone().unwrap_or_default());
                cell.validate_cel()
            }
            "PlayerService" => {
                let svc: PlayerService = parse(&file, value);
                bound.push((file.clone(), svc.spec.cell_ref.name.clone()));
                svc.validate_cel()
            }
            "MatchmakingPool" => {
                let pool: MatchmakingPool = parse(&file, value);
                bound.push((file.clone(), pool.spec.cell_ref.name.clone()));
                pool.validate_cel()
            }
            other => panic!("{file}: unexpected kind {other:?} in examples/cells"),
        };
        if let Err(errors) = result {
            let msgs: Vec<_> = errors
                .as_slice()
                .iter()
                .map(|e| e.message.clone())
                .collect();
            panic!("{file}: {kind} breaks CEL rules: {msgs:?}");
        }
    }
    for tier in [CellTier::Dedicated, CellTier::Shared, CellTier::Enterprise] {
        assert!(
            tiers.contains(&format!("{tier:?}")),
            "no example of tier {tier:?}"
        );
    }
    for (file, cell) in bound {
        assert!(
            cells.contains(&cell),
            "{file}: binds to cell {cell:?}, which no example defines"
        );
    }
}
