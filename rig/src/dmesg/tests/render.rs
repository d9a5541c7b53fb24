//! Text/JSON rendering, title patterns and timestamps.

use super::*;

// ---- rendering and matching ----

#[test]
fn json_and_text_rendering() {
    let reports = analyze(fixture!("gpf_kasan_null_x86_64_6.12.log"));
    let v = render_json(&reports);
    let r0 = &v["reports"][0];
    assert_eq!(r0["kind"], "general_protection");
    assert_eq!(r0["title"], "general protection fault in rig_port_stats");
    assert_eq!(r0["guilty_frame"], "rig_port_stats");
    assert!(r0["line"].as_u64().unwrap() > 0);
    assert!(r0["timestamp"].as_f64().unwrap() > 0.0);
    assert!(r0["stack"].as_array().unwrap().len() > 3);
    let t = render_text(&reports);
    assert!(t.contains("=== general protection fault in rig_port_stats\n"));
    assert!(t.contains("kind:   general_protection\n"));
    assert!(t.contains("guilty: rig_port_stats\n"));
    assert!(t.contains("    RIP: 0010:rig_port_stats+0x3a/0x120\n"));
    assert_eq!(render_text(&[]), "no reports\n");
}

#[test]
fn title_patterns() {
    assert!(title_matches("WARNING in foo", "WARNING in foo"));
    assert!(!title_matches("WARNING in foo", "WARNING in foo_bar"));
    assert!(title_matches(
        "/^OF: ERROR: memory leak in /testcase-data/",
        "OF: ERROR: memory leak in /testcase-data/x"
    ));
    assert!(title_matches(
        "/refcount bug/",
        "WARNING: refcount bug in x"
    ));
    assert!(!title_matches("/^refcount/", "WARNING: refcount bug in x"));
    assert!(!title_matches("/([/", "anything"));
    assert!(
        title_matches("/", "/"),
        "too short for a regex: exact match"
    );
}

#[test]
fn dmesg_human_readable_time() {
    let r = check(
        fixture!("dmesg_human_time_refcount_arm64_6.12.log"),
        "WARNING: refcount bug in of_node_put",
        ReportKind::Refcount,
        Some("of_node_put"),
    );
    assert_eq!(r.timestamp, None);
    assert!(r
        .text
        .starts_with("------------[ cut here ]------------\nrefcount_t: underflow"));
}
