//! The layering rule as a test: every `crate::…` path in `src/` names a module on the same
//! layer or a lower one. The layers are data here, and the README states the same rule in the
//! words this file renders ([`rule`]), so the two cannot drift apart.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The top-level modules, layer by layer from the top: a module may use its own layer's and
/// those below, never one above.
const LAYERS: &[&[&str]] = &[
    &[
        "main",
        "cli",
        "runtime",
        "demo",
        "bench",
        "rekey",
        "private_postgres",
    ],
    &["web", "config"],
    &[
        "onboarding",
        "signin",
        "directory",
        "doctor",
        "setup",
        "consent",
        "scim",
    ],
    &[
        "settings",
        "customers",
        "invitations",
        "tenants",
        "operators",
        "operator_invites",
        "api_tokens",
    ],
    &[
        "jobs",
        "webhooks",
        "events",
        "identity",
        "graph",
        "credentials",
    ],
    &["background"],
    &[
        "types",
        "crypto",
        "audit",
        "db",
        "metrics",
        "format",
        "telemetry",
    ],
];

/// The rule in the README's words: layers from the top, joined by arrows.
fn rule() -> String {
    LAYERS
        .iter()
        .map(|layer| layer.join(", "))
        .collect::<Vec<_>>()
        .join(" → ")
}

/// The layer of a top-level module (0 is the top).
fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("src/ is readable").path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The top-level modules named by the `crate::` paths in `code` (comments left out): the
/// first segment after `crate::`, or of each path in a `crate::{…}` group.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let text: String = code
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("//") {
                ""
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let line_of = |at: usize| text[..at].matches('\n').count() + 1;
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in text.match_indices("crate::") {
        // `gangway_crate::` or `my_crate::` are not this crate.
        if text[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            continue;
        }
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.push((line_of(at), ident(group[start..i].trim())));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push((line_of(at), ident(group[start..i].trim())));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.push((line_of(at), ident(rest)));
        }
    }
    found.retain(|(_, module)| !module.is_empty());
    found
}

#[test]
fn no_module_uses_one_on_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut upward = Vec::new();
    for file in sources(&src) {
        let relative = file.strip_prefix(&src).expect("under src/");
        let first = relative.components().next().expect("a path");
        let from = first.as_os_str().to_string_lossy();
        let from = from.trim_end_matches(".rs");
        // The crate root declares the modules; this file names them in its own test data.
        if matches!(from, "lib" | "layering") {
            continue;
        }
        let from_layer = layer(from).unwrap_or_else(|| {
            panic!("src/{from} is on no layer: add it to LAYERS and the README")
        });
        let code = std::fs::read_to_string(&file).expect("readable");
        for (line, to) in crate_paths(&code) {
            let to_layer = layer(&to).unwrap_or_else(|| {
                panic!(
                    "{}:{line} uses crate::{to}, which is on no layer",
                    relative.display()
                )
            });
            if to_layer < from_layer {
                upward.push(format!("{}:{line}: {from} uses {to}", relative.display()));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "upward imports (the rule: {}):\n{}",
        rule(),
        upward.join("\n")
    );
}

#[test]
fn every_top_level_module_is_placed_once_and_the_readme_states_the_rule() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeSet::new();
    for entry in std::fs::read_dir(&src).expect("src/ is readable") {
        let name = entry.expect("readable").file_name();
        let name = name.to_string_lossy();
        let name = name.trim_end_matches(".rs");
        if !matches!(name, "lib" | "layering") {
            modules.insert(name.to_owned());
        }
    }
    let placed: Vec<&str> = LAYERS.iter().flat_map(|l| l.iter().copied()).collect();
    let unique: BTreeSet<String> = placed.iter().map(|m| (*m).to_owned()).collect();
    assert_eq!(unique.len(), placed.len(), "a module is on two layers");
    assert_eq!(unique, modules, "LAYERS and src/'s modules differ");
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md is readable");
    let readme: String = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        readme.contains(&format!("`{}`", rule())),
        "README's layering rule should read `{}`",
        rule()
    );
}

#[test]
fn paths_are_read_singly_in_groups_and_not_from_comments() {
    let code = "use crate::types::Schedule;\n// crate::web is named in a comment\nuse crate::{\n    audit::{self, Action},\n    db,\n};\nlet x = my_crate::web::f();";
    let found: Vec<String> = crate_paths(code).into_iter().map(|(_, m)| m).collect();
    assert_eq!(found, ["types", "audit", "db"]);
}
