//! The floors of `flags` (the table in `src/lib.rs`): a module uses only modules on floors below
//! its own. Fails on any `crate::` path, outside a `#[cfg(test)]` module, that points sideways or
//! up, on a `crate::` path to a root item instead of its module, and on a module missing from
//! the table. A `pub use crate::…` that keeps an old public path is a re-export, not a use.

use std::collections::BTreeMap;
use std::path::Path;

/// The floor of each module, read from the table in `lib.rs` (`//! | N | [`name`] | … |`).
fn floors(lib: &str) -> BTreeMap<String, u32> {
    lib.lines()
        .filter_map(|line| {
            let mut cells = line.strip_prefix("//! |")?.split('|').map(str::trim);
            let floor = cells.next()?.parse::<u32>().ok()?;
            // `[`name`]`, or `[`name`](mod@name)` where a macro shares the name.
            let name = cells
                .next()?
                .split("](")
                .next()?
                .trim_matches(['[', ']', '`']);
            Some((name.to_owned(), floor))
        })
        .collect()
}

/// The code of a source file without its test module (at the end, by the crate's convention)
/// and without comments.
fn code_of(source: &str) -> String {
    let end = [
        "\n#[cfg(test)]\nmod tests",
        "\n#[cfg(test)]\npub(crate) mod tests",
        "\n#[cfg(all(test",
    ]
    .iter()
    .filter_map(|marker| source.find(marker))
    .min()
    .unwrap_or(source.len());
    source[..end]
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::` path in `code`: the first segment of each (`crate::a::b` → `a`;
/// `crate::{a::x, b::{c, d}}` → `a`, `b`, over as many lines as rustfmt spreads it), and every
/// `super::super::x` (from a child module: the crate's `x`), skipping `pub use` re-exports.
fn uses(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for prefix in ["crate::", "super::super::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(prefix).map(|at| from + at) {
            from = at + prefix.len();
            let line_start = code[..at].rfind('\n').map_or(0, |n| n + 1);
            if code[line_start..at].trim_start().starts_with("pub use") {
                continue;
            }
            let rest = &code[from..];
            match rest.strip_prefix('{') {
                Some(group) => found.extend(group_heads(group)),
                None => found.extend(head(rest)),
            }
        }
    }
    found
}

/// The first segment of each item of a `{…}` group (its text from after the `{`), nested
/// groups and line breaks included.
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let (mut depth, mut item_start) = (0usize, 0);
    for (at, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                heads.extend(head(&group[item_start..at]));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                heads.extend(head(&group[item_start..at]));
                item_start = at + 1;
            }
            _ => {}
        }
    }
    heads
}

/// The first path segment of `path`, if any.
fn head(path: &str) -> Option<String> {
    let name: String = path
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// What is wrong with module `module` (on `floors`) using `used`: nothing, or why.
fn check(module: &str, used: &str, floors: &BTreeMap<String, u32>) -> Option<String> {
    if used == module {
        return None;
    }
    let own = floors.get(module)?;
    match floors.get(used) {
        None => Some(format!(
            "`{module}` uses `crate::{used}`, which is not a module of the floor table: use the item's own module"
        )),
        Some(floor) if floor >= own => Some(format!(
            "`{module}` (floor {own}) uses `crate::{used}` (floor {floor}): a module may use only floors below its own"
        )),
        Some(_) => None,
    }
}

/// Every violation in the sources under `src`.
fn violations(src: &Path, floors: &BTreeMap<String, u32>) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path.strip_prefix(src).unwrap_or(&path);
            if relative == Path::new("lib.rs") || path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            // `a.rs` and `a/b.rs` both belong to module `a`.
            let module = relative
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .unwrap_or_default()
                .trim_end_matches(".rs")
                .to_owned();
            if !floors.contains_key(&module) {
                found.push(format!(
                    "{}: module `{module}` is not in the floor table in lib.rs",
                    relative.display()
                ));
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap_or_default();
            for used in uses(&code_of(&source)) {
                if let Some(problem) = check(&module, &used, floors) {
                    found.push(format!("{}: {problem}", relative.display()));
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn no_module_uses_one_beside_or_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let floors = floors(&lib);
    assert!(
        floors.len() >= 15
            && floors.get("env") == Some(&1)
            && floors.get("client") > floors.get("flag"),
        "the floor table was not read: {floors:?}"
    );
    let found = violations(&src, &floors);
    assert!(
        found.is_empty(),
        "imports against the floors:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_catches_what_it_is_for() {
    let floors: BTreeMap<String, u32> = [("wire", 5), ("snapshot", 7), ("eval", 4), ("token", 6)]
        .into_iter()
        .map(|(name, floor)| (name.to_owned(), floor))
        .collect();
    // Up, sideways, grouped, to the crate root: each found. Down, itself, re-exports, tests: not.
    let code = code_of(
        "use crate::snapshot::Snapshot;\nuse crate::{eval::Context, token};\nfn f() { crate::install(); }\n\
         use crate::eval::Evaluation; // crate::snapshot in a comment\npub use crate::snapshot::read_file;\n\
         use crate::{\n    eval::{Context, Reason},\n    snapshot::{FlagEntry, Snapshot},\n};\n\
         use super::super::token::check;\n\
         fn g() { crate::wire::rfc3339(); }\n#[cfg(test)]\nmod tests {\n    use crate::snapshot::Store;\n}\n",
    );
    let problems: Vec<String> = uses(&code)
        .iter()
        .filter_map(|used| check("wire", used, &floors))
        .collect();
    assert_eq!(problems.len(), 5, "{problems:#?}");
    assert!(problems[0].contains("crate::snapshot") && problems[0].contains("floor 7"));
    assert!(problems[1].contains("crate::token") && problems[1].contains("floor 6"));
    assert!(problems[2].contains("crate::install") && problems[2].contains("not a module"));
    assert!(
        problems[3].contains("crate::snapshot"),
        "a group over several lines"
    );
    assert!(
        problems[4].contains("crate::token"),
        "super::super from a child module"
    );
}
