use super::*;
use std::collections::{BTreeMap, BTreeSet};

fn repo(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `--long` flags in a text.
fn flags(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    for (i, _) in text.match_indices("--") {
        if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'-') {
            continue;
        }
        let name: String = text[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
            .collect();
        if name.len() > 1 && !name.ends_with('-') {
            out.insert(format!("--{name}"));
        }
    }
    out
}

/// Sections of a markdown page headed by a command in backticks (the whole
/// heading), with the flags of their tables.
fn command_sections(md: &str, bins: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for l in md.lines() {
        if l.starts_with('#') {
            let h = l.trim_start_matches('#').trim();
            current = h
                .strip_prefix('`')
                .and_then(|h| h.strip_suffix('`'))
                .filter(|c| bins.iter().any(|b| c.split(' ').next() == Some(*b)))
                .map(str::to_string)
                .or_else(|| bins.iter().find(|b| h == **b).map(|b| b.to_string()));
            if let Some(c) = &current {
                out.entry(c.clone()).or_default();
            }
            continue;
        }
        if let (Some(c), true) = (&current, l.trim_start().starts_with('|')) {
            let first = l
                .trim()
                .trim_start_matches('|')
                .split('|')
                .next()
                .unwrap_or("");
            out.get_mut(c).unwrap().extend(flags(first));
        }
    }
    out
}

fn page(name: &str) -> String {
    let (cmd, section) = commands()
        .into_iter()
        .find(|(c, _)| c.get_name() == name)
        .unwrap();
    plain(&String::from_utf8(command_page(cmd, section)).unwrap())
}

/// Every command section of docs/reference.md (mcrd, mcrctl) and of
/// docs/traffic-tools.md (mcrgen) is in the binary's man page, with every
/// flag its table lists; and every flag of a page is in those docs.
#[test]
fn command_pages_match_the_reference() {
    let mut sections = command_sections(&repo("docs/reference.md"), &["mcrd", "mcrctl"]);
    sections.extend(command_sections(
        &repo("docs/traffic-tools.md"),
        &["mcrgen"],
    ));
    assert!(sections.len() > 20, "{sections:?}");
    let mut problems = Vec::new();
    for bin in ["mcrd", "mcrctl", "mcrgen"] {
        let text = page(bin);
        let mut documented = BTreeSet::new();
        for (cmd, fl) in sections
            .iter()
            .filter(|(c, _)| c.split(' ').next() == Some(bin))
        {
            if cmd.contains(' ') && !text.contains(&format!(".SS \"{cmd}\"")) {
                problems.push(format!("{bin} page has no section for `{cmd}`"));
            }
            for f in fl {
                if !text.contains(f.as_str()) {
                    problems.push(format!("{bin} page lacks {f} (of `{cmd}`)"));
                }
            }
            documented.extend(fl.iter().cloned());
        }
        for f in flags(&text) {
            if f != "--help" && !documented.contains(&f) {
                problems.push(format!("{bin} page has {f}, the docs do not list it"));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Keys in the first column of docs/configuration.md's tables, and keys
/// of list items named in their type column.
fn documented_keys(md: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut keys = BTreeSet::new();
    let mut items = BTreeSet::new();
    for l in md.lines().filter(|l| l.trim_start().starts_with('|')) {
        let row = cells(l);
        let first = row.first().cloned().unwrap_or_default();
        for part in first.split('`').skip(1).step_by(2) {
            let k = part.trim_start_matches('.');
            if !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_lowercase() || "_[].".contains(c))
            {
                keys.insert(k.to_string());
            }
        }
        // Keys of list items, given in the type column: `{ name, dr_priority? }`.
        for part in row
            .iter()
            .skip(1)
            .flat_map(|c| c.split('`').skip(1).step_by(2))
        {
            if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                for k in inner.split(',') {
                    let k = k.trim().trim_end_matches('?');
                    if !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                        items.insert(k.to_string());
                    }
                }
            }
        }
    }
    (keys, items)
}

/// Every key of the schema (all of them set in one file) as leaf names.
fn schema_keys() -> BTreeSet<String> {
    let full = r#"{
      rules: [ { name: "a", input: { interface: "e0", group: "239.1.1.1", port: 1, source: "10.0.0.1" },
                 outputs: [ { interface: "e1", group: "239.1.1.2", port: 2, ttl: 3 } ] } ],
      cores: [0], user: "u", control_socket_group: "g", multicast_ttl: 4, pinning: { e0: [0] },
      control_plane: { rpf_provider: "/run/x.sock" },
      igmp: { querier_interfaces: ["e0"] },
      msdp: { enabled: true, local_address: "10.0.0.1",
              peers: [ { address: "10.0.0.2", mesh_group: "m", description: "d", default_peer: true } ] },
      pim: { router_id: "10.0.0.1", rp_address: "10.0.0.1",
             interfaces: [ { name: "e0", dr_priority: 2, hello_period: 10 } ],
             static_rp: [ { group: "239.0.0.0/8", rp: "10.0.0.3" } ] },
      metrics: { listen: "127.0.0.1:9469" },
    }"#;
    let c = mcr_config::parse_str(full, "full").unwrap();
    fn walk(v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    out.insert(k.clone());
                    // `pinning`'s keys are interface names, not schema keys.
                    if k != "pinning" {
                        walk(v, out);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut keys = BTreeSet::new();
    walk(&serde_json::to_value(&c).unwrap(), &mut keys);
    keys
}

/// mcr.json5(5) and docs/configuration.md document the same keys, and
/// every key of the schema is among them.
#[test]
fn config_page_matches_the_guide_and_the_schema() {
    let page = config_page(CONFIGURATION_MD);
    let text = plain(&page);
    let (doc, items) = documented_keys(CONFIGURATION_MD);
    assert!(
        doc.contains("listen") && doc.contains("kernel_fast_path"),
        "{doc:?}"
    );
    let tags: BTreeSet<String> = page
        .split(".TP\n")
        .skip(1)
        .filter_map(|item| item.lines().next())
        .flat_map(|tag| {
            let tag = plain(tag);
            tag.split_whitespace()
                .map(|w| {
                    w.trim_matches(|c: char| ",.".contains(c))
                        .trim_start_matches('.')
                        .to_string()
                })
                .filter(|w| doc.contains(w))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut problems = Vec::new();
    for k in &doc {
        if !text.contains(k.as_str()) {
            problems.push(format!("mcr.json5(5) lacks `{k}` of docs/configuration.md"));
        }
        if !tags.contains(k) {
            problems.push(format!("mcr.json5(5) has no entry for `{k}`"));
        }
    }
    for k in &items {
        if !text.contains(k.as_str()) {
            problems.push(format!("mcr.json5(5) lacks `{k}` of docs/configuration.md"));
        }
    }
    let bare: BTreeSet<String> = doc
        .iter()
        .map(|k| k.rsplit(['.', ']']).next().unwrap_or(k).to_string())
        .chain(doc.iter().cloned())
        .chain(items.iter().cloned())
        .collect();
    for k in schema_keys() {
        if !bare.contains(&k) {
            problems.push(format!(
                "schema key `{k}` is not in docs/configuration.md's tables"
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(page.starts_with(".TH MCR.JSON5 5"));
    assert!(!page.contains("\n# "), "markdown heading left in the page");
}

#[test]
fn generates_pages_and_completions() {
    let all = generate_all();
    let paths: Vec<&str> = all.iter().map(|g| g.path.as_str()).collect();
    for p in [
        "man/mcrd.8",
        "man/mcrctl.8",
        "man/mcrgen.1",
        "man/mcr.json5.5",
        "completions/bash/mcrctl",
        "completions/zsh/_mcrd",
        "completions/fish/mcrgen.fish",
    ] {
        assert!(paths.contains(&p), "{p} not in {paths:?}");
    }
    let mcrd = page("mcrd");
    assert!(mcrd.contains(".SS \"mcrd supervisor\""), "{mcrd}");
    assert!(mcrd.contains("--metrics-listen"));
    assert!(page("mcrctl").contains(".SS \"mcrctl config save\""));
}
