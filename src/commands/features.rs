use super::Outcome;
use crate::cli::Global;
use crate::features;
use anyhow::Result;

/// Print the feature catalog: every table, its key and every column with its type,
/// definition and scope (what a fast `serve` cycle refreshes: `own` — the entity's
/// own record; `related` — aggregates over the records naming it; `shop-wide` —
/// statistics over the whole shop, left to full cycles), straight from the
/// registry the engine computes from.
#[derive(Debug, clap::Args)]
pub struct FeaturesArgs {
    /// Print JSON (`[{table, key, columns: [{name, type, scope, description}]}]`).
    #[arg(long)]
    pub json: bool,
}

pub fn run(_global: &Global, args: FeaturesArgs) -> Result<Outcome> {
    let catalog = features::catalog();
    if args.json {
        let tables: Vec<serde_json::Value> = catalog
            .iter()
            .map(|t| {
                serde_json::json!({
                    "table": t.name,
                    "key": t.key.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
                    "columns": t.features.iter().zip(t.scopes()).map(|(f, scope)| serde_json::json!({"name": f.name, "type": f.kind.name(), "scope": scope.name(), "description": f.description})).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&tables)?);
        return Ok(Outcome::Success);
    }
    for t in &catalog {
        println!("### {} — key ({})\n", t.name, ["shop_id"].into_iter().chain(t.key.iter().map(|(k, _)| *k)).collect::<Vec<_>>().join(", "));
        println!("| column | type | scope | definition |\n|---|---|---|---|");
        for (f, scope) in t.features.iter().zip(t.scopes()) {
            println!("| {} | {} | {} | {} |", f.name, f.kind.name(), scope.name(), f.description.replace('|', "\\|"));
        }
        println!();
    }
    Ok(Outcome::Success)
}
