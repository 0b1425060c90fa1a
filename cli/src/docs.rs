//! Man pages and shell completions, generated (by `mcr-gen-docs`, see
//! docs/deployment.md#packages) from the clap definitions in
//! [`crate::args`] and from docs/configuration.md:
//!
//! - `mcrd(8)`, `mcrctl(8)`, `mcrgen(1)`: clap_mangen's page for the
//!   command, then one subsection per subcommand (recursively) with its
//!   synopsis and every option, then the exit statuses, files and related
//!   pages;
//! - `mcr.json5(5)`: docs/configuration.md converted to roff, so the page
//!   and the guide say the same (a test checks every key of the schema is
//!   in both);
//! - bash, zsh and fish completions for the three binaries (clap_complete).

use clap::CommandFactory;
use roff::{bold, roman, Roff};
use std::io::Write;
use std::path::Path;

/// The configuration guide the `mcr.json5(5)` page is made from.
pub const CONFIGURATION_MD: &str = include_str!("../../docs/configuration.md");

/// A generated file: its path under the output directory and its bytes.
pub struct Generated {
    pub path: String,
    pub contents: Vec<u8>,
}

/// The three command lines with their man section.
pub fn commands() -> Vec<(clap::Command, &'static str)> {
    vec![
        (crate::args::mcrd::Cli::command(), "8"),
        (crate::args::mcrctl::Cli::command(), "8"),
        (crate::args::mcrgen::Cli::command(), "1"),
    ]
}

/// Every man page and completion file.
pub fn generate_all() -> Vec<Generated> {
    let mut out = Vec::new();
    for (cmd, section) in commands() {
        let name = cmd.get_name().to_string();
        out.push(Generated {
            path: format!("man/{name}.{section}"),
            contents: command_page(cmd.clone(), section),
        });
        for (shell, file) in [
            (clap_complete::Shell::Bash, name.clone()),
            (clap_complete::Shell::Zsh, format!("_{name}")),
            (clap_complete::Shell::Fish, format!("{name}.fish")),
        ] {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), &name, &mut buf);
            out.push(Generated {
                path: format!("completions/{shell}/{file}"),
                contents: buf,
            });
        }
    }
    out.push(Generated {
        path: "man/mcr.json5.5".into(),
        contents: config_page(CONFIGURATION_MD).into_bytes(),
    });
    out
}

/// Writes [`generate_all`] under `dir`.
pub fn write_all(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut written = Vec::new();
    for g in generate_all() {
        let p = dir.join(&g.path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::File::create(&p)?.write_all(&g.contents)?;
        written.push(p);
    }
    Ok(written)
}

/// Renders with one of clap_mangen's section renderers, minus its `.SH`
/// lines (the caller puts the text under its own heading).
fn without_headings(render: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut buf = Vec::new();
    render(&mut buf).expect("rendering into memory");
    String::from_utf8_lossy(&buf)
        .lines()
        .filter(|l| !l.starts_with(".SH "))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn subcommand_sections(out: &mut String, parent: &clap::Command, path: &str) {
    for sub in parent.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        let full = format!("{path} {}", sub.get_name());
        let man = clap_mangen::Man::new(sub.clone().bin_name(&full).display_name(&full));
        out.push_str(&Roff::new().control("SS", [full.as_str()]).to_roff());
        out.push_str(&without_headings(|w| man.render_description_section(w)));
        out.push_str(&Roff::new().control("PP", [] as [&str; 0]).to_roff());
        out.push_str(&without_headings(|w| man.render_synopsis_section(w)));
        out.push_str(&without_headings(|w| man.render_options_section(w)));
        out.push_str(&alias_note(sub));
        if !sub.get_visible_aliases().collect::<Vec<_>>().is_empty() {
            let aliases: Vec<&str> = sub.get_visible_aliases().collect();
            out.push_str(
                &Roff::new()
                    .control("PP", [] as [&str; 0])
                    .text([roman(format!("Also: {}.", aliases.join(", ")))])
                    .to_roff(),
            );
        }
        subcommand_sections(out, sub, &full);
    }
}

/// clap_mangen does not show an option's visible aliases: name them.
fn alias_note(cmd: &clap::Command) -> String {
    let mut r = Roff::new();
    for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let (Some(long), Some(aliases)) = (a.get_long(), a.get_visible_aliases()) else {
            continue;
        };
        for alias in aliases {
            r.control("PP", [] as [&str; 0]).text([
                bold(format!("--{alias}")),
                roman(" is another name for "),
                bold(format!("--{long}")),
                roman("."),
            ]);
        }
    }
    r.to_roff()
}

/// What every page of a binary ends with.
fn tail_sections(name: &str) -> Roff {
    let mut r = Roff::new();
    let see_also = match name {
        "mcrd" => "mcrctl(8), mcrgen(1), mcr.json5(5), systemd.service(5)",
        "mcrctl" => "mcrd(8), mcr.json5(5)",
        _ => "mcrd(8), mcrctl(8)",
    };
    match name {
        "mcrd" => {
            r.control("SH", ["EXIT STATUS"]);
            for (code, what) in [
                (
                    "0",
                    "stopped by SIGTERM or SIGINT; check-config: the file is valid",
                ),
                (
                    "1",
                    "a failure at start or while running (the message says which)",
                ),
                ("2", "invalid configuration or command line"),
                ("4", "another mcrd serves the control socket path"),
            ] {
                r.control("TP", [] as [&str; 0])
                    .text([bold(code)])
                    .text([roman(what)]);
            }
            r.control("SH", ["SIGNALS"]);
            for (sig, what) in [
                (
                    "SIGHUP",
                    "re-read the configuration file; an invalid file changes nothing",
                ),
                ("SIGTERM, SIGINT", "stop, logging the final counters"),
            ] {
                r.control("TP", [] as [&str; 0])
                    .text([bold(sig)])
                    .text([roman(what)]);
            }
            r.control("SH", ["FILES"]);
            for (f, what) in [
                (
                    "/etc/mcr/mcrd.json5",
                    "configuration of mcrd.service (mcr.json5(5))",
                ),
                ("/etc/mcr/NAME.json5", "configuration of mcrd@NAME.service"),
                (
                    "/run/mcr/mcrd.sock, /run/mcr/mcrd-NAME.sock",
                    "control sockets",
                ),
                (
                    "/usr/share/doc/mcr/",
                    "the guides: deployment, configuration, reference",
                ),
            ] {
                r.control("TP", [] as [&str; 0])
                    .text([bold(f)])
                    .text([roman(what)]);
            }
        }
        "mcrctl" => {
            r.control("SH", ["EXIT STATUS"]);
            for (code, what) in [
                ("0", "the daemon carried out the request"),
                ("1", "the daemon refused the request (the message says why)"),
                ("2", "invalid command line"),
                ("3", "no daemon answers on the socket"),
            ] {
                r.control("TP", [] as [&str; 0])
                    .text([bold(code)])
                    .text([roman(what)]);
            }
            r.control("SH", ["ENVIRONMENT"]);
            r.control("TP", [] as [&str; 0])
                .text([bold("MCR_SOCKET")])
                .text([roman("control socket when --socket is not given")]);
        }
        _ => {}
    }
    r.control("SH", ["SEE ALSO"]);
    r.text([roman(see_also)]);
    r
}

/// The page of one binary, from its clap definition.
pub fn command_page(cmd: clap::Command, section: &str) -> Vec<u8> {
    let name = cmd.get_name().to_string();
    let version = cmd.get_version().unwrap_or_default().to_string();
    let man = clap_mangen::Man::new(cmd.clone())
        .section(section)
        .source(format!("mcr {version}"))
        .manual(if section == "8" {
            "System Administration"
        } else {
            "User Commands"
        });
    let mut buf = Vec::new();
    man.render_title(&mut buf).expect("memory");
    man.render_name_section(&mut buf).expect("memory");
    man.render_synopsis_section(&mut buf).expect("memory");
    man.render_description_section(&mut buf).expect("memory");
    man.render_options_section(&mut buf).expect("memory");
    buf.extend_from_slice(alias_note(&cmd).as_bytes());
    // Not built: global options stay with the parent (listed once).
    if cmd.has_subcommands() {
        let mut s = Roff::new().control("SH", ["COMMANDS"]).to_roff();
        subcommand_sections(&mut s, &cmd, &name);
        buf.extend_from_slice(s.as_bytes());
    }
    buf.extend_from_slice(tail_sections(&name).to_roff().as_bytes());
    man.render_version_section(&mut buf).expect("memory");
    buf
}

// ------------------------------------------------------------ mcr.json5(5)

/// Escapes text for roff (not at the start of a line: see [`line`]).
fn esc(s: &str) -> String {
    s.replace('\\', "\\e").replace('-', "\\-")
}

/// Markdown inline markup to roff: `code` and **strong** bold, links to
/// their text.
fn inline(md: &str) -> String {
    let mut out = String::new();
    let mut rest = md;
    while let Some(c) = rest.chars().next() {
        if c == '`' {
            if let Some(end) = rest[1..].find('`') {
                out.push_str(&format!("\\fB{}\\fR", esc(&rest[1..1 + end])));
                rest = &rest[end + 2..];
                continue;
            }
        }
        if rest.starts_with("**") {
            if let Some(end) = rest[2..].find("**") {
                out.push_str(&format!("\\fB{}\\fR", inline(&rest[2..2 + end])));
                rest = &rest[end + 4..];
                continue;
            }
        }
        if c == '[' {
            if let Some(close) = rest.find("](") {
                if let Some(paren) = rest[close..].find(')') {
                    out.push_str(&inline(&rest[1..close]));
                    rest = &rest[close + paren + 1..];
                    continue;
                }
            }
        }
        out.push_str(&esc(&c.to_string()));
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// A text line that roff will not take for a request.
fn line(s: &str) -> String {
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}\n")
    } else {
        format!("{s}\n")
    }
}

fn cells(row: &str) -> Vec<String> {
    let row = row.trim().trim_start_matches('|').trim_end_matches('|');
    // A `|` inside backticks is not a column separator.
    let mut cols = vec![String::new()];
    let mut code = false;
    for c in row.chars() {
        match c {
            '`' => {
                code = !code;
                cols.last_mut().unwrap().push(c);
            }
            '|' if !code => cols.push(String::new()),
            _ => cols.last_mut().unwrap().push(c),
        }
    }
    cols.into_iter().map(|c| c.trim().to_string()).collect()
}

/// docs/configuration.md as the `mcr.json5(5)` page.
pub fn config_page(md: &str) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let mut out = String::new();
    out.push_str(&format!(
        ".TH MCR.JSON5 5 \"\" \"mcr {version}\" \"File Formats\"\n.SH NAME\nmcr.json5 \\- configuration file of the mcrd multicast relay\n.SH SYNOPSIS\n\\fB/etc/mcr/mcrd.json5\\fR, \\fB/etc/mcr/\\fINAME\\fB.json5\\fR\n.SH DESCRIPTION\n"
    ));
    let mut lines = md.lines().peekable();
    let mut header: Vec<String> = Vec::new();
    let mut in_code = false;
    while let Some(l) = lines.next() {
        if l.starts_with("```") {
            if in_code {
                out.push_str(".fi\n.RE\n");
            } else {
                out.push_str(".PP\n.RS 4\n.nf\n");
            }
            in_code = !in_code;
            continue;
        }
        if in_code {
            out.push_str(&line(&esc(l)));
            continue;
        }
        if l.starts_with("# ") {
            continue;
        }
        if let Some(h) = l.strip_prefix("## ") {
            out.push_str(&format!(
                ".SH \"{}\"\n",
                esc(&h.replace('`', "").to_uppercase())
            ));
            continue;
        }
        if let Some(h) = l.strip_prefix("### ") {
            out.push_str(&format!(".SS \"{}\"\n", esc(&h.replace('`', ""))));
            continue;
        }
        let t = l.trim();
        if t.starts_with('|') {
            let row = cells(t);
            if row
                .iter()
                .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
            {
                continue;
            }
            if header.is_empty() {
                header = row;
                continue;
            }
            out.push_str(".TP\n");
            out.push_str(&line(&inline(&row[0])));
            let rest: Vec<String> = row
                .iter()
                .enumerate()
                .skip(1)
                .filter(|(_, c)| !c.is_empty())
                .map(|(i, c)| match header.get(i) {
                    Some(h) if i + 1 < row.len() => format!("{}: {}.", inline(h), inline(c)),
                    _ => inline(c),
                })
                .collect();
            out.push_str(&line(&rest.join(" ")));
            if !lines.peek().is_some_and(|n| n.trim().starts_with('|')) {
                header.clear();
            }
            continue;
        }
        if t.is_empty() {
            out.push_str(".PP\n");
            continue;
        }
        if let Some(item) = t.strip_prefix("- ") {
            out.push_str(".IP \\(bu 2\n");
            out.push_str(&line(&inline(item)));
            continue;
        }
        out.push_str(&line(&inline(t)));
    }
    out.push_str(".SH \"SEE ALSO\"\nmcrd(8), mcrctl(8)\n");
    out
}

/// Roff source as plain words, for comparisons: escapes and fonts removed.
pub fn plain(roff: &str) -> String {
    roff.replace("\\-", "-")
        .replace("\\e", "\\")
        .replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
        .replace("\\fP", "")
        .replace("\\&", "")
        .replace("\\(aq", "'")
        .replace("\\*(Aq", "'")
}

#[cfg(test)]
mod tests;
