//! `check` against real verdicts: the recorded frontends' prompts (and what
//! ComfyUI 0.11.1 answered when they were POSTed), the recorded bad-prompt
//! probes of every version, and crafted prompts for each finding kind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_test_support::replay as support;

use comfy_adapter::model::catalogue::NodeCatalogue;
use comfyctl::check::{
    CheckOptions, CheckReport, FindingKind, Severity, check_document, check_prompt,
};
use comfyctl::convert::ConvertOptions;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use support::{PAIRS, VERSIONS, WORKFLOWS, read_json, repo};

fn fixture(version: &str, prefix: &str) -> Value {
    let dir = repo().join("fixtures").join(format!("comfyui-{version}"));
    let path = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("{version}: no {prefix}*"));
    read_json(&path)
}

fn catalogue(version: &str) -> NodeCatalogue {
    let raw = fixture(version, "018-");
    NodeCatalogue::from_slice(&serde_json::to_vec(&raw["response"]["body"]).unwrap()).unwrap()
}

fn check(prompt: &Value, cat: &NodeCatalogue) -> CheckReport {
    check_prompt(prompt.as_object().unwrap(), cat, &CheckOptions::default())
}

/// `(node id, input)` of every error.
fn error_sites(r: &CheckReport) -> BTreeSet<(String, String)> {
    r.errors()
        .map(|f| {
            (
                f.node_id().unwrap_or("").to_owned(),
                f.input().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// `(node id, input_name)` of every error in a server's `node_errors`; an
/// error without an input name (an exception) counts for the node.
fn server_sites(body: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (id, n) in body["node_errors"].as_object().unwrap() {
        for e in n["errors"].as_array().unwrap() {
            let input = e["extra_info"]["input_name"].as_str().unwrap_or("");
            out.insert((id.clone(), input.to_owned()));
        }
    }
    out
}

#[test]
fn ground_truth_prompts_agree_with_the_servers_verdict() {
    let cat = catalogue("0.11.1");
    for name in WORKFLOWS {
        let dir = repo().join("workflows/api-ground-truth/1.37.11");
        let prompt = read_json(&dir.join(format!("{name}.api.json")));
        let verdict = read_json(&dir.join(format!("{name}.submit-response.json")));
        let report = check(&prompt, &cat);
        if verdict["status"] == 200 {
            assert!(report.is_ok(), "{name}: {:#?}", report.findings);
            continue;
        }
        assert_eq!(verdict["status"], 400, "{name}");
        let mut mine = error_sites(&report);
        let mut server = server_sites(&verdict["body"]);
        // An exception on a node (no input name) is compared by node only.
        let bare: BTreeSet<String> = server
            .iter()
            .filter(|(_, i)| i.is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        mine.retain(|(n, _)| !bare.contains(n));
        server.retain(|(n, _)| !bare.contains(n));
        assert_eq!(mine, server, "{name}: {:#?}", report.findings);
        // Every error here is a model file the server lacks.
        for f in report.errors() {
            assert!(
                matches!(&f.kind, FindingKind::NotInList { value, .. }
                    if comfyctl::check::is_model_file(value.as_str().unwrap())),
                "{name}: {f}"
            );
        }
        assert!(
            report.models().iter().all(|(_, installed)| !installed),
            "{name}"
        );
        assert!(!report.models().is_empty(), "{name}");
    }
}

#[test]
fn ground_truth_prompts_on_their_own_line() {
    for (frontend, server) in PAIRS {
        let cat = catalogue(server);
        for name in WORKFLOWS {
            let prompt = read_json(
                &repo()
                    .join("workflows/api-ground-truth")
                    .join(frontend)
                    .join(format!("{name}.api.json")),
            );
            let report = check(&prompt, &cat);
            if name == "tiny_bypass_mute" {
                assert!(report.is_ok(), "{name} on {server}: {:#?}", report.findings);
                continue;
            }
            assert!(!report.is_ok(), "{name} on {server}");
            for f in report.errors() {
                let FindingKind::NotInList { value, .. } = &f.kind else {
                    panic!("{name} on {server}: unexpected {f}");
                };
                assert!(
                    comfyctl::check::is_model_file(value.as_str().unwrap()),
                    "{f}"
                );
            }
            assert_eq!(
                report.count(Severity::Warning),
                0,
                "{name} on {server}: {:#?}",
                report.findings
            );
        }
    }
}

#[test]
fn models_elsewhere_turns_missing_models_into_warnings() {
    let cat = catalogue("0.11.1");
    let prompt =
        read_json(&repo().join("workflows/api-ground-truth/1.37.11/video_ltx2_t2v.api.json"));
    let opts = CheckOptions {
        models_elsewhere: true,
    };
    let report = check_prompt(prompt.as_object().unwrap(), &cat, &opts);
    assert!(report.is_ok(), "{:#?}", report.findings);
    assert!(report.count(Severity::Warning) > 0);
}

#[test]
fn ui_workflows_are_converted_then_checked() {
    let cat = catalogue("0.11.1");
    let opts = ConvertOptions::for_server(&semver::Version::new(0, 11, 1));
    for name in WORKFLOWS {
        let ui = read_json(&repo().join("workflows/ui").join(format!("{name}.json")));
        let from_ui = check_document(&ui, &cat, &opts, &CheckOptions::default()).unwrap();
        let api = read_json(
            &repo()
                .join("workflows/api-ground-truth/1.37.11")
                .join(format!("{name}.api.json")),
        );
        assert_eq!(from_ui, check(&api, &cat), "{name}");
    }
}

#[test]
fn recorded_bad_prompts_agree_with_every_server() {
    for version in VERSIONS {
        let cat = catalogue(version);
        for prefix in ["038-", "039-", "040-", "041-", "042-", "043-", "044-"] {
            let ex = fixture(version, prefix);
            let body = &ex["response"]["body"];
            assert_eq!(ex["response"]["status"], 400, "{version} {prefix}");
            let report = check_document(
                &ex["request"]["body"],
                &cat,
                &ConvertOptions::default(),
                &CheckOptions::default(),
            )
            .unwrap();
            let kind = body["error"]["type"].as_str().unwrap();
            let at = format!("{version} {prefix}: {:#?}", report.findings);
            match kind {
                "missing_node_type" | "invalid_prompt" => {
                    let errs: Vec<_> = report.errors().collect();
                    assert_eq!(errs.len(), 1, "{at}");
                    let FindingKind::MissingNodeType {
                        node_id,
                        class_type,
                    } = &errs[0].kind
                    else {
                        panic!("{at}");
                    };
                    assert_eq!(node_id, "1", "{at}");
                    let sent = ex["request"]["body"]["prompt"]["1"]["class_type"].as_str();
                    assert_eq!(class_type.as_deref(), sent, "{at}");
                }
                "prompt_no_outputs" => {
                    assert!(
                        report.errors().any(|f| f.kind == FindingKind::NoOutputNode),
                        "{at}"
                    );
                }
                "prompt_outputs_failed_validation" => {
                    assert_eq!(error_sites(&report).len(), 1, "{at}");
                    let mine: BTreeSet<String> =
                        error_sites(&report).into_iter().map(|(n, _)| n).collect();
                    let server: BTreeSet<String> =
                        server_sites(body).into_iter().map(|(n, _)| n).collect();
                    assert_eq!(mine, server, "{at}");
                    for (n, input) in server_sites(body) {
                        if !input.is_empty() {
                            assert!(error_sites(&report).contains(&(n, input)), "{at}");
                        }
                    }
                }
                other => panic!("{version} {prefix}: unexpected verdict {other}"),
            }
        }
    }
}

fn one_error(prompt: Value, cat: &NodeCatalogue) -> FindingKind {
    let report = check(&prompt, cat);
    let errs: Vec<_> = report.errors().collect();
    assert_eq!(errs.len(), 1, "{:#?}", report.findings);
    errs[0].kind.clone()
}

fn save(images: Value) -> Value {
    json!({"class_type": "SaveImage", "inputs": {"images": images, "filename_prefix": "x"}})
}

#[test]
fn each_finding_kind() {
    let cat = catalogue("0.11.1");
    let img = json!({"class_type": "EmptyImage",
                     "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}});

    // Missing required input, with an unknown one that looks like its new name.
    let report = check(
        &json!({"1": {"class_type": "EmptyImage",
                      "inputs": {"w": 64, "height": 64, "batch_size": 1, "color": 0}},
                "2": save(json!(["1", 0]))}),
        &cat,
    );
    assert!(report.findings.iter().any(|f| f.kind
        == FindingKind::MissingInput {
            node_id: "1".into(),
            class_type: "EmptyImage".into(),
            input: "width".into()
        }));
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.severity == Severity::Warning
                && f.kind
                    == FindingKind::UnknownInput {
                        node_id: "1".into(),
                        class_type: "EmptyImage".into(),
                        input: "w".into(),
                        renamed_to: Some("width".into())
                    })
    );

    // Two inputs renamed at once: each is paired by the words it shares.
    let report = check(
        &json!({"1": {"class_type": "EmptyImage",
                      "inputs": {"image_width": 64, "image_height": 64, "batch_size": 1, "color": 0}},
                "2": save(json!(["1", 0]))}),
        &cat,
    );
    let renames: BTreeSet<(String, Option<String>)> = report
        .findings
        .iter()
        .filter_map(|f| match &f.kind {
            FindingKind::UnknownInput {
                input, renamed_to, ..
            } => Some((input.clone(), renamed_to.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        renames,
        BTreeSet::from([
            ("image_height".to_owned(), Some("height".to_owned())),
            ("image_width".to_owned(), Some("width".to_owned())),
        ])
    );

    // Out of range.
    let k = one_error(
        json!({"1": {"class_type": "EmptyImage",
                     "inputs": {"width": 99999, "height": 64, "batch_size": 1, "color": 0}},
               "2": save(json!(["1", 0]))}),
        &cat,
    );
    assert!(
        matches!(&k, FindingKind::ValueOutOfRange { input, value, max: Some(m), .. }
            if input == "width" && *value == json!(99999) && *m == json!(16384)),
        "{k:?}"
    );

    // Not in list (a plain combo, not a model).
    let k = one_error(
        json!({"1": img.clone(),
               "2": {"class_type": "ImageScaleBy",
                     "inputs": {"image": ["1", 0], "upscale_method": "cubic-ish", "scale_by": 0.5}},
               "3": save(json!(["2", 0]))}),
        &cat,
    );
    assert!(
        matches!(&k, FindingKind::NotInList { input, allowed, .. }
            if input == "upscale_method" && allowed.contains(&json!("lanczos"))),
        "{k:?}"
    );

    // Links: to nothing, to a slot that is not there, of the wrong type.
    for (link, reason) in [
        (json!(["9", 0]), "no node 9"),
        (json!(["1", 3]), "no slot 3"),
    ] {
        let k = one_error(json!({"1": img.clone(), "2": save(link)}), &cat);
        assert!(
            matches!(&k, FindingKind::BadLink { reason: r, .. } if r.contains(reason)),
            "{k:?}"
        );
    }
    let k = one_error(
        json!({"1": {"class_type": "EmptyLatentImage",
                     "inputs": {"width": 64, "height": 64, "batch_size": 1}},
               "2": save(json!(["1", 0]))}),
        &cat,
    );
    assert!(
        matches!(&k, FindingKind::BadLink { reason, .. } if reason.contains("LATENT")),
        "{k:?}"
    );

    // Wrong value type.
    let k = one_error(
        json!({"1": {"class_type": "EmptyImage",
                     "inputs": {"width": "wide", "height": 64, "batch_size": 1, "color": 0}},
               "2": save(json!(["1", 0]))}),
        &cat,
    );
    assert!(
        matches!(&k, FindingKind::WrongValueType { input, .. } if input == "width"),
        "{k:?}"
    );

    // Unknown node type (alone: the server stops there), and a prompt
    // without outputs.
    let k = one_error(json!({"1": {"class_type": "Nope", "inputs": {}}}), &cat);
    assert_eq!(
        k,
        FindingKind::MissingNodeType {
            node_id: "1".into(),
            class_type: Some("Nope".into())
        }
    );
    assert_eq!(
        one_error(json!({"1": img}), &cat),
        FindingKind::NoOutputNode
    );
}

#[test]
fn model_references_know_what_is_installed() {
    // A catalogue where one checkpoint is installed.
    let mut body = Map::new();
    body.insert(
        "CheckpointLoaderSimple".into(),
        json!({"input": {"required": {"ckpt_name": [["have.safetensors"], {}]}},
               "output": ["MODEL", "CLIP", "VAE"], "output_node": false}),
    );
    body.insert(
        "Sink".into(),
        json!({"input": {"required": {"model": ["MODEL", {}]}}, "output": [], "output_node": true}),
    );
    let cat = NodeCatalogue::from_slice(&serde_json::to_vec(&body).unwrap()).unwrap();
    let run = |file: &str| {
        check(
            &json!({"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": file}},
                    "2": {"class_type": "Sink", "inputs": {"model": ["1", 0]}}}),
            &cat,
        )
    };
    let ok = run("have.safetensors");
    assert!(ok.is_ok(), "{:#?}", ok.findings);
    assert_eq!(ok.models(), vec![("have.safetensors".to_owned(), true)]);
    let missing = run("other.safetensors");
    assert_eq!(missing.count(Severity::Error), 1);
    assert_eq!(
        missing.models(),
        vec![("other.safetensors".to_owned(), false)]
    );
}

#[test]
fn save_video_without_codec() {
    let prompt = json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 24}},
        "3": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0], "filename_prefix": "v", "format": "auto"}}
    });
    // 0.33.0: codec is a dynamic combo; leaving it out passes the server's
    // validation and fails in execution, so check must say so.
    let k = one_error(prompt.clone(), &catalogue("0.33.0"));
    assert_eq!(
        k,
        FindingKind::MissingDynamicComboInput {
            node_id: "3".into(),
            class_type: "SaveVideo".into(),
            input: "codec".into()
        }
    );
    // 0.11.1: a plain combo, the server refuses it as a missing input.
    let k = one_error(prompt.clone(), &catalogue("0.11.1"));
    assert!(
        matches!(&k, FindingKind::MissingInput { input, .. } if input == "codec"),
        "{k:?}"
    );
    // With the codec the prompt is fine; a chosen option's nested inputs are
    // checked too (h264 → re-encode requires crf).
    let mut with = prompt.clone();
    with["3"]["inputs"]["codec"] = json!("auto");
    assert!(check(&with, &catalogue("0.33.0")).is_ok());
    with["3"]["inputs"]["codec"] = json!("h264");
    with["3"]["inputs"]["codec.encoding"] = json!("re-encode");
    let k = one_error(with.clone(), &catalogue("0.33.0"));
    assert_eq!(
        k,
        FindingKind::MissingDynamicComboInput {
            node_id: "3".into(),
            class_type: "SaveVideo".into(),
            input: "codec.encoding.crf".into()
        }
    );
    with["3"]["inputs"]["codec.encoding.crf"] = json!(80);
    let k = one_error(with, &catalogue("0.33.0"));
    assert!(
        matches!(&k, FindingKind::ValueOutOfRange { input, .. } if input == "codec.encoding.crf"),
        "{k:?}"
    );
}

#[test]
fn not_a_workflow_is_an_error() {
    let cat = catalogue("0.11.1");
    let err = check_document(
        &json!([1, 2]),
        &cat,
        &ConvertOptions::default(),
        &CheckOptions::default(),
    );
    assert!(err.is_err());
}

#[test]
fn nodes_that_feed_no_output_are_warnings() {
    // The server validates only what output nodes depend on: node 3 is
    // broken but feeds nothing, so the prompt runs.
    let cat = catalogue("0.11.1");
    let report = check(
        &json!({"1": {"class_type": "EmptyImage",
                      "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
                "2": save(json!(["1", 0])),
                "3": {"class_type": "EmptyImage",
                      "inputs": {"width": 0, "height": 64, "batch_size": 1, "color": 0}}}),
        &cat,
    );
    assert!(report.is_ok(), "{:#?}", report.findings);
    let f = &report.findings[0];
    assert!(
        f.feeds_no_output && f.severity == Severity::Warning,
        "{f:?}"
    );
    assert!(f.to_string().contains("feeds no output"), "{f}");
}

#[test]
fn an_older_release_lacks_the_new_nodes() {
    // Planning a downgrade (or a stale worker): every workflow using a node
    // class 0.3.64 does not have is flagged with all such nodes, not only
    // the first.
    let cat = catalogue("0.3.64");
    let ui = read_json(&repo().join("workflows/ui/image_flux2_klein_text_to_image.json"));
    let report = check_document(
        &ui,
        &cat,
        &ConvertOptions::default(),
        &CheckOptions::default(),
    )
    .unwrap();
    let missing: BTreeSet<(String, String)> = report
        .errors()
        .map(|f| match &f.kind {
            FindingKind::MissingNodeType {
                node_id,
                class_type,
            } => (node_id.clone(), class_type.clone().unwrap()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(missing.contains(&("75:62".to_owned(), "Flux2Scheduler".to_owned())));
    assert!(missing.contains(&("75:66".to_owned(), "EmptyFlux2LatentImage".to_owned())));
    let tiny = read_json(&repo().join("workflows/ui/tiny_bypass_mute.json"));
    let ok = check_document(
        &tiny,
        &cat,
        &ConvertOptions::default(),
        &CheckOptions::default(),
    )
    .unwrap();
    assert!(ok.is_ok(), "{:#?}", ok.findings);
}

mod never_panic {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e9f64..1e9).prop_map(Value::from),
            "[a-z0-9:._-]{0,8}".prop_map(Value::from),
            Just(json!(-10)),
            Just(json!(-20)),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("nodes".to_owned()),
                        Just("links".to_owned()),
                        Just("inputs".to_owned()),
                        Just("class_type".to_owned()),
                        Just("widgets_values".to_owned()),
                        Just("definitions".to_owned()),
                        Just("subgraphs".to_owned()),
                        Just("id".to_owned()),
                        Just("type".to_owned()),
                        Just("mode".to_owned()),
                        Just("link".to_owned()),
                        "[a-z]{1,6}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    static CATALOGUE: std::sync::LazyLock<NodeCatalogue> =
        std::sync::LazyLock::new(|| super::catalogue("0.11.1"));
    static TINY: std::sync::LazyLock<Value> =
        std::sync::LazyLock::new(|| read_json(&repo().join("workflows/ui/tiny_bypass_mute.json")));

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn convert_and_check_never_panic(doc in json_value(), mode in 0i64..5) {
            let cat = &*CATALOGUE;
            let opts = ConvertOptions { dedupe_subgraph_node_ids: mode % 2 == 0, ..ConvertOptions::default() };
            let _ = comfyctl::convert::convert(&doc, cat, &opts);
            let _ = check_document(&doc, cat, &opts, &CheckOptions::default());
            // The tiny workflow with one field replaced by noise.
            let mut ui = TINY.clone();
            let fields = ["widgets_values", "inputs", "mode", "id", "type", "outputs"];
            ui["nodes"][usize::try_from(mode % 4).unwrap()][fields[usize::try_from(mode).unwrap()]] = doc.clone();
            let _ = comfyctl::convert::convert(&ui, cat, &opts);
            let _ = check_document(&ui, cat, &opts, &CheckOptions::default());
        }
    }
}
