//! The adapter's prompt validation against what the six recorded servers
//! answered: each recorded invalid submit (fixtures 038–044), checked
//! against that server's own recorded `/object_info`, gives the recorded
//! 400 body exactly.

use comfy_adapter::Line;
use comfy_adapter::normalize::parse_version;
use comfy_adapter::validate::{Wording, validate};
use serde_json::{Map, Value};
use std::path::PathBuf;

const VERSIONS: [&str; 6] = ["0.3.64", "0.6.0", "0.9.2", "0.11.1", "0.26.0", "0.33.0"];
const INVALID: [&str; 7] = [
    "038-prompt-unknown-class",
    "039-prompt-missing-class_type",
    "040-prompt-no-outputs",
    "041-prompt-value-smaller-than-min",
    "042-prompt-required-input-missing",
    "043-prompt-model-not-found",
    "044-prompt-bad-linked-input",
];

fn fixture(version: &str, name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(format!("comfyui-{version}"))
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn object(v: &Value, what: &str) -> Map<String, Value> {
    v.as_object()
        .cloned()
        .unwrap_or_else(|| panic!("{what} is not an object"))
}

#[test]
fn every_recorded_refusal_is_reproduced_from_the_recorded_catalogue() {
    let mut checked = 0;
    for version in VERSIONS {
        let parsed = parse_version(version).expect("a recorded version");
        let wording = Wording::of(Line::for_version(&parsed), &parsed);
        let classes = object(
            &fixture(version, "018-object_info-full")["response"]["body"],
            "object_info",
        );
        for name in INVALID {
            let rec = fixture(version, name);
            assert_eq!(rec["response"]["status"], 400, "{version} {name}");
            let prompt = object(&rec["request"]["body"]["prompt"], "prompt");
            let got = validate(&wording, &classes, &prompt, None, &|_| false);
            assert_eq!(
                got.err().as_ref(),
                Some(&rec["response"]["body"]),
                "{version} {name}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, VERSIONS.len() * INVALID.len());
}

#[test]
fn a_recorded_accepted_prompt_passes_and_names_its_outputs() {
    for version in VERSIONS {
        let parsed = parse_version(version).expect("a recorded version");
        let wording = Wording::of(Line::for_version(&parsed), &parsed);
        let classes = object(
            &fixture(version, "018-object_info-full")["response"]["body"],
            "object_info",
        );
        let rec = fixture(version, "046-prompt-slow-1");
        assert_eq!(rec["response"]["status"], 200, "{version}");
        let prompt = object(&rec["request"]["body"]["prompt"], "prompt");
        let ok = validate(&wording, &classes, &prompt, None, &|_| false)
            .unwrap_or_else(|e| panic!("{version}: refused {e}"));
        assert_eq!(
            Value::Object(ok.node_errors),
            rec["response"]["body"]["node_errors"],
            "{version}"
        );
        assert!(!ok.outputs.is_empty(), "{version}");
    }
}

#[test]
fn partial_execution_targets_choose_the_outputs_and_none_left_is_no_outputs() {
    let parsed = parse_version("0.33.0").expect("a version");
    let wording = Wording::of(Line::for_version(&parsed), &parsed);
    let classes = object(
        &fixture("0.33.0", "018-object_info-full")["response"]["body"],
        "object_info",
    );
    let prompt = object(
        &serde_json::json!({
            "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
        }),
        "prompt",
    );
    let all = validate(&wording, &classes, &prompt, None, &|_| false).expect("valid");
    assert_eq!(all.outputs, ["2", "3"]);
    let one =
        validate(&wording, &classes, &prompt, Some(&["3".into()]), &|_| false).expect("valid");
    assert_eq!(one.outputs, ["3"]);
    let none =
        validate(&wording, &classes, &prompt, Some(&[]), &|_| false).expect_err("no outputs left");
    assert_eq!(none["error"]["type"], "prompt_no_outputs");
}
