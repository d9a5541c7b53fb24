//! Tests of the tree builder and the deserializer.

use super::*;
use serde::Deserialize;

#[test]
fn resolution_follows_the_core_schema() {
    assert_eq!(resolve("~"), Resolved::Null);
    assert_eq!(resolve("True"), Resolved::Bool(true));
    assert_eq!(resolve("yes"), Resolved::Str);
    assert_eq!(resolve("-12"), Resolved::Int(-12));
    assert_eq!(resolve("0x1F"), Resolved::Int(31));
    assert_eq!(resolve("18446744073709551615"), Resolved::UInt(u64::MAX));
    assert_eq!(resolve("-9223372036854775808"), Resolved::Int(i64::MIN));
    assert!(matches!(
        resolve("-9223372036854775809"),
        Resolved::Float(_)
    ));
    assert_eq!(resolve("1.5e3"), Resolved::Float(1500.0));
    assert_eq!(resolve("inf"), Resolved::Str);
    assert_eq!(resolve("30s"), Resolved::Str);
    assert_eq!(resolve("-"), Resolved::Str);
}

#[test]
fn marks_and_paths() {
    let t = parse("a: 1\nsteps:\n  - guest: {run: \"x\"}\n  - sleep: 1s\n").unwrap();
    let p = Path::root().key("steps").index(0).key("guest").key("run");
    assert_eq!(p.to_string(), "steps[0].guest.run");
    assert_eq!(
        t.locate(&p),
        Mark {
            line: 3,
            column: 18
        }
    );
    assert_eq!(
        t.locate_key(&p),
        Mark {
            line: 3,
            column: 13
        }
    );
    // A block mapping is where its first key is.
    let p = Path::root().key("steps").index(1);
    assert_eq!(t.locate(&p), Mark { line: 4, column: 5 });
    // Missing paths fall back to the nearest ancestor.
    let p = Path::root().key("steps").index(1).key("sleep").key("nope");
    assert_eq!(
        t.locate(&p),
        Mark {
            line: 4,
            column: 12
        }
    );
}

#[test]
fn structure_errors() {
    let e = parse("a: 1\na: 2\n").unwrap_err();
    assert_eq!(
        (e.mark, e.path.to_string()),
        (Mark { line: 2, column: 1 }, "a".into())
    );
    assert!(e.message.contains("duplicate key `a`"), "{e:?}");
    let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
    assert_eq!(e.mark.line, 2);
    let e = parse("a: &x 1\nb: *x\n").unwrap_err();
    assert_eq!(
        (e.mark, e.path.to_string()),
        (Mark { line: 2, column: 4 }, "b".into())
    );
    let e = parse("").unwrap_err();
    assert_eq!(e.mark, Mark::START);
    let deep = "[".repeat(200);
    let e = parse(&deep).unwrap_err();
    assert!(e.message.contains("nesting"), "{e:?}");
    let e = parse("? [a]\n: 1\n").unwrap_err();
    assert!(e.message.contains("keys"), "{e:?}");
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Step {
    run: String,
    #[serde(default)]
    times: Option<u32>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Doc {
    steps: Vec<Step>,
}

fn de(text: &str) -> Result<Doc, DeError> {
    from_node(&parse(text).unwrap())
}

#[test]
fn a_valid_document_deserializes() {
    let d = de("steps:\n  - run: a\n  - {run: b, times: 3}\n").unwrap();
    assert_eq!(d.steps[1].times, Some(3));
    assert_eq!(d.steps[0].run, "a");
}

#[test]
fn errors_carry_line_column_and_field_path() {
    let e = de("steps:\n  - run: a\n  - {run: b, tmes: 3}\n").unwrap_err();
    let (mark, path) = e.at.clone().unwrap();
    assert_eq!(path.to_string(), "steps[1].tmes");
    assert_eq!((mark.line, mark.column), (3, 14));
    assert!(e.message.contains("unknown field `tmes`"), "{e}");
    let e = de("steps:\n  - run: a\n    times: -1\n").unwrap_err();
    assert_eq!(e.at.unwrap().1.to_string(), "steps[0].times");
    // A quoted number is a string, never an integer.
    let e = de("steps:\n  - {run: a, times: \"3\"}\n").unwrap_err();
    assert!(e.message.contains("invalid type"), "{e}");
}

#[test]
fn single_quoted_scalars_read_back_as_the_same_string() {
    for text in [
        "",
        "it's",
        "''",
        "a: b, [c] {d} #e",
        "true",
        "3",
        "~",
        " lead",
        "\"x\"",
    ] {
        let q = single_quoted(text);
        match parse(&format!("{{run: {q}}}"))
            .unwrap()
            .get(&Path::root().key("run"))
        {
            Some(Node::Scalar { value, plain, .. }) => {
                assert_eq!((value.as_str(), *plain), (text, false), "{q}");
            }
            other => panic!("{q}: {other:?}"),
        }
    }
    assert_eq!(single_quoted("it's"), "'it''s'");
}
