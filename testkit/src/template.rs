//! `template.yaml` read as tests need it: one resource's block of text, and the values tests
//! check (a parameter's JSON value, a dashboard's body) — without a YAML parser, since the
//! template's tags (`!Sub`, `!Ref`) are not YAML any standard parser takes.

use crate::workspace;

/// The text of `template.yaml`.
pub fn text() -> String {
    std::fs::read_to_string(workspace().join("template.yaml")).expect("template.yaml")
}

/// The block of resource `name`: from its line up to the next resource or section.
pub fn resource(name: &str) -> String {
    let template = text();
    let start = template
        .find(&format!("\n  {name}:\n"))
        .unwrap_or_else(|| panic!("{name} in template.yaml"));
    let rest = &template[start + 1..];
    // Up to the next resource (a line indented by two spaces exactly), or a section.
    let mut end = rest.len();
    let mut at = 0;
    for line in rest.split_inclusive('\n') {
        let indented_two = line.starts_with("  ") && !line.starts_with("   ");
        if at > 0 && (indented_two || !line.starts_with(' ')) && !line.trim().is_empty() {
            end = at;
            break;
        }
        at += line.len();
    }
    rest[..end].to_owned()
}

/// The single-quoted `Value: '…'` of an `AWS::SSM::Parameter` resource.
pub fn parameter_value(name: &str) -> String {
    resource(name)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Value: '"))
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or_else(|| panic!("{name}'s single-quoted Value"))
        .to_owned()
}

/// The literal block after `key: |` (or `key: !Sub |`) in resource `name`, dedented.
pub fn block_scalar(name: &str, key: &str) -> String {
    let resource = resource(name);
    let mut lines = resource.lines();
    let header = lines
        .by_ref()
        .find(|l| {
            let l = l.trim();
            l.starts_with(&format!("{key}:")) && l.ends_with('|')
        })
        .unwrap_or_else(|| panic!("{name}.{key}: a literal block"));
    let indent = header.len() - header.trim_start().len();
    lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
}
