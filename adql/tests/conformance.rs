//! The IVOA ADQL validation suite (lyonetia) against the strict ADQL 2.1 parser: every
//! `<adql valid="true">` query must parse and every other one must be rejected. Prints a
//! score per file and fails unless every query outside [`ALLOWED`] is classified right.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use almagest_adql::{parse_query_with, ParseOptions, UserFunction};
use quick_xml::events::Event;
use quick_xml::Reader;

/// Queries whose expected outcome we knowingly disagree with: (file, uuid, why the suite
/// is wrong by the ADQL 2.1 Recommendation). Empty: the parser agrees with the whole suite.
const ALLOWED: &[(&str, &str, &str)] = &[];

struct Case {
    uuid: String,
    valid: bool,
    adql: String,
    functions: Vec<String>,
}

struct SuiteFile {
    functions: Vec<String>,
    cases: Vec<Case>,
}

fn suite_dir() -> PathBuf {
    // The directory cargo runs the test in, not the one it was compiled in: a shared
    // target directory may hold a binary built from another clone of the same sources.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.join("../../shared/conformance/adql-lyonetia")
}

fn xml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            xml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "xml") {
            out.push(path);
        }
    }
}

fn reference(name: &str) -> String {
    match name {
        "lt" => "<".into(),
        "gt" => ">".into(),
        "amp" => "&".into(),
        "quot" => "\"".into(),
        "apos" => "'".into(),
        _ => {
            let code = if let Some(hex) = name.strip_prefix("#x") {
                u32::from_str_radix(hex, 16).ok()
            } else {
                name.strip_prefix('#').and_then(|d| d.parse().ok())
            };
            code.and_then(char::from_u32)
                .map(String::from)
                .unwrap_or_else(|| panic!("unknown XML entity &{name};"))
        }
    }
}

/// Reads the queries of one suite file, with the user-defined functions declared for the
/// whole file and for each query.
fn read_suite_file(path: &Path) -> SuiteFile {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let mut reader = Reader::from_str(&text);
    let mut stack: Vec<String> = Vec::new();
    let mut file = SuiteFile {
        functions: vec![],
        cases: vec![],
    };
    let mut current: Option<Case> = None;
    let mut buffer = String::new();
    loop {
        let event = reader
            .read_event()
            .unwrap_or_else(|e| panic!("{}: bad XML: {e}", path.display()));
        match event {
            Event::Start(e) => {
                let name = e.name().as_ref().to_string();
                match name.as_str() {
                    "query" => {
                        let uuid = e
                            .try_get_attribute("uuid")
                            .expect("uuid attribute")
                            .map(|a| a.value.into_owned())
                            .unwrap_or_default();
                        current = Some(Case {
                            uuid,
                            valid: false,
                            adql: String::new(),
                            functions: vec![],
                        });
                    }
                    "adql" => {
                        let valid = e
                            .try_get_attribute("valid")
                            .expect("valid attribute")
                            .map(|a| a.value.into_owned());
                        if let Some(case) = current.as_mut() {
                            case.valid = valid.as_deref() == Some("true");
                        }
                    }
                    _ => {}
                }
                buffer.clear();
                stack.push(name);
            }
            Event::Text(t) => buffer.push_str(&t.xml10_content()),
            Event::CData(t) => buffer.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => buffer.push_str(&reference(&r.xml10_content())),
            Event::End(_) => {
                let name = stack.pop().expect("balanced XML");
                match name.as_str() {
                    "adql" => {
                        if let Some(case) = current.as_mut() {
                            case.adql = buffer.clone();
                        }
                    }
                    "form" => {
                        let in_query = stack.iter().any(|s| s == "query");
                        let form = buffer.trim().to_string();
                        match current.as_mut() {
                            Some(case) if in_query => case.functions.push(form),
                            _ => file.functions.push(form),
                        }
                    }
                    "query" => file.cases.extend(current.take()),
                    _ => {}
                }
                buffer.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    file
}

#[test]
fn lyonetia_suite() {
    let dir = suite_dir();
    assert!(
        dir.is_dir(),
        "the IVOA ADQL suite is missing: expected it at {}",
        dir.display()
    );
    let mut files = Vec::new();
    xml_files(&dir, &mut files);
    assert!(!files.is_empty(), "no XML files under {}", dir.display());
    let mut failures = Vec::new();
    let mut scores = BTreeMap::new();
    let (mut total, mut passed) = (0, 0);
    for path in &files {
        let relative = path
            .strip_prefix(&dir)
            .expect("under the suite")
            .display()
            .to_string();
        let suite = read_suite_file(path);
        let mut file_passed = 0;
        for case in &suite.cases {
            let options = ParseOptions {
                user_functions: suite
                    .functions
                    .iter()
                    .chain(&case.functions)
                    .filter_map(|form| UserFunction::from_signature(form))
                    .collect(),
            };
            let result = parse_query_with(&case.adql, &options);
            if result.is_ok() == case.valid {
                file_passed += 1;
                continue;
            }
            if ALLOWED
                .iter()
                .any(|(f, uuid, _)| *f == relative && *uuid == case.uuid)
            {
                file_passed += 1;
                continue;
            }
            failures.push(match result {
                Ok(_) => format!(
                    "{relative} {}: accepted, but the suite says invalid:\n{}",
                    case.uuid,
                    case.adql.trim()
                ),
                Err(e) => format!(
                    "{relative} {}: rejected ({e}), but the suite says valid:\n{}",
                    case.uuid,
                    case.adql.trim()
                ),
            });
        }
        total += suite.cases.len();
        passed += file_passed;
        scores.insert(relative, (file_passed, suite.cases.len()));
    }
    for (file, (ok, n)) in &scores {
        println!("{file}: {ok}/{n}");
    }
    println!("total: {passed}/{total}");
    assert!(total > 0, "the suite holds no queries");
    assert!(
        failures.is_empty(),
        "{} of {total} queries misclassified:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
