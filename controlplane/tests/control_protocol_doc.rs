//! `docs/control-protocol.md` against the types: every example request must
//! parse as a [`Request`], every example answer must read back into the
//! answer struct of the request before it and serialise to exactly the same
//! JSON (so a field the docs show and the type lacks, or the reverse, fails),
//! and every protocol-level error shown must be the one `parse` gives.

use mcr_controlplane::control::api::{Answer, ReloadRecord};
use mcr_controlplane::control::protocol::{self, COMMANDS};
use mcr_controlplane::control::{Request, Response};
use serde_json::Value;

const DOC: &str = include_str!("../../docs/control-protocol.md");

/// The fenced blocks of the doc: (language, body, heading above it).
fn blocks() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut heading = String::new();
    let mut open: Option<(String, String)> = None;
    for line in DOC.lines() {
        if let Some((lang, body)) = &mut open {
            if line.trim_start().starts_with("```") {
                out.push((lang.clone(), body.clone(), heading.clone()));
                open = None;
            } else {
                body.push_str(line);
                body.push('\n');
            }
        } else if let Some(lang) = line.trim_start().strip_prefix("```") {
            open = Some((lang.trim().to_string(), String::new()));
        } else if let Some(h) = line.strip_prefix("#") {
            heading = h.trim_start_matches('#').trim().to_string();
        }
    }
    assert!(open.is_none(), "unclosed code block");
    out
}

fn request_of(line: &str) -> Result<Request, Response> {
    protocol::parse(line).1
}

/// Reads an answer as a client would, checking it against `req`.
fn check_answer(answer: &Value, req: &Result<Request, Response>, context: &str) {
    let a: Answer = serde_json::from_value(answer.clone())
        .unwrap_or_else(|e| panic!("{context}: not an answer: {e}\n{answer:#}"));
    match (a.ok, req) {
        (true, Ok(req)) => {
            let result = a.result.clone().expect("ok answer without result");
            let reply = req
                .reply_kind()
                .parse(result.clone())
                .unwrap_or_else(|e| panic!("{context}: result of {}: {e}", req.name()));
            let back = serde_json::to_value(&reply).unwrap();
            assert_eq!(
                back,
                result,
                "{context}: the {} example differs from its type",
                req.name()
            );
        }
        (true, Err(e)) => panic!("{context}: ok answer to a request that does not parse: {e:?}"),
        (false, Err(Response::Err(e))) => {
            let shown = a.error.expect("error answer without error");
            assert_eq!(shown.code, e.code, "{context}");
            assert_eq!(shown.message, e.message, "{context}");
        }
        (false, _) => {
            // Refused by the daemon after parsing (not_found, invalid_config,
            // ...): the code must be one of ours, which deserialising checked.
            assert!(a.error.is_some(), "{context}: error answer without error");
        }
    }
}

#[test]
fn every_example_matches_the_types() {
    let mut last: Option<Result<Request, Response>> = None;
    let mut answers = 0;
    let mut requests = 0;
    for (lang, body, heading) in blocks() {
        let context = format!("section '{heading}'");
        match lang.as_str() {
            "json" => {
                let trimmed = body.trim();
                if trimmed.starts_with('"') {
                    // A field shown on its own, e.g. `"last_reload": {...},`.
                    #[derive(serde::Deserialize)]
                    #[serde(deny_unknown_fields)]
                    struct Fragment {
                        #[allow(dead_code)]
                        last_reload: Option<ReloadRecord>,
                    }
                    let wrapped = format!("{{{}}}", trimmed.trim_end_matches(','));
                    serde_json::from_str::<Fragment>(&wrapped)
                        .unwrap_or_else(|e| panic!("{context}: fragment: {e}\n{wrapped}"));
                    continue;
                }
                match serde_json::from_str::<Value>(trimmed) {
                    Ok(v) if v.get("cmd").is_some() => {
                        last = Some(request_of(trimmed));
                        requests += 1;
                    }
                    Ok(v) if v.get("ok").is_some() => {
                        let req = last.as_ref().unwrap_or_else(|| {
                            panic!("{context}: an answer with no request before it")
                        });
                        check_answer(&v, req, &context);
                        answers += 1;
                    }
                    Ok(v) if v.get("hello").is_some() => {
                        serde_json::from_value::<mcr_controlplane::control::api::Hello>(v)
                            .unwrap_or_else(|e| panic!("{context}: hello: {e}"));
                    }
                    Ok(v) => panic!("{context}: a JSON block that is none of ours: {v}"),
                    Err(_) => {
                        // One event per line (the subscribe section).
                        for line in trimmed.lines() {
                            let v: Value = serde_json::from_str(line)
                                .unwrap_or_else(|e| panic!("{context}: {e}: {line}"));
                            assert!(v["event"].is_string(), "{context}: {line}");
                            assert!(v["time"].is_f64(), "{context}: {line}");
                        }
                    }
                }
            }
            "text" => {
                // `-> request` / `<- answer` pairs.
                let mut req = None;
                for line in body.lines() {
                    if let Some(r) = line.strip_prefix("-> ") {
                        // `(the bytes ff fe)` and `... (over 1 MiB)` describe
                        // what the connection layer answers; only the answer
                        // is checked for those.
                        let described = r.starts_with('(') || r.contains("... (");
                        req = Some((!described).then(|| request_of(r)));
                    } else if let Some(a) = line.strip_prefix("<- ") {
                        let v: Value = serde_json::from_str(a)
                            .unwrap_or_else(|e| panic!("{context}: {e}: {a}"));
                        match req.take().expect("an answer line with no request line") {
                            Some(r) => check_answer(&v, &r, &context),
                            None => {
                                serde_json::from_value::<Answer>(v)
                                    .unwrap_or_else(|e| panic!("{context}: {e}: {a}"));
                            }
                        }
                        answers += 1;
                    }
                }
            }
            _ => {}
        }
    }
    assert!(requests >= 20, "only {requests} example requests found");
    assert!(answers >= 25, "only {answers} example answers found");
}

#[test]
fn every_command_has_a_section() {
    for cmd in COMMANDS {
        assert!(
            DOC.lines()
                .any(|l| l.trim() == format!("### {cmd}") || l.trim() == format!("## {cmd}")),
            "docs/control-protocol.md has no section for `{cmd}`"
        );
    }
}
