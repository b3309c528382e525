//! The fit check against what real servers answered: the recorded catalogues, the
//! prompts the real frontend produced, and ComfyUI 0.11.1's answers to them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use comfy_routing::{Catalogue, Needs};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn catalogue(version: &str) -> Catalogue {
    let recorded = read(&repo().join(format!(
        "fixtures/comfyui-{version}/018-object_info-full.json"
    )));
    let body = serde_json::to_vec(&recorded["response"]["body"]).unwrap();
    Catalogue::from_slice(&body).unwrap()
}

#[test]
fn every_recorded_catalogue_reads() {
    for v in ["0.3.64", "0.6.0", "0.9.2", "0.11.1", "0.26.0", "0.33.0"] {
        let c = catalogue(v);
        assert!(c.len() > 300, "{v}: {} classes", c.len());
    }
}

/// For each prompt 0.11.1 was sent, the list values the check says it lacks are exactly
/// the `value_not_in_list` errors of ComfyUI's answer, and a prompt it ran fits.
#[test]
fn misfits_are_what_comfyui_0_11_1_refused() {
    let c = catalogue("0.11.1");
    let dir = repo().join("workflows/api-ground-truth/1.37.11");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".submit-response.json") else {
            continue;
        };
        let answer = read(&path);
        let prompt = read(&dir.join(format!("{stem}.api.json")));
        let refused: BTreeSet<(String, String, String)> = answer["body"]["node_errors"]
            .as_object()
            .map(|errors| {
                errors
                    .values()
                    .flat_map(|node| {
                        let class = node["class_type"].as_str().unwrap().to_owned();
                        node["errors"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .filter(|e| e["type"] == "value_not_in_list")
                            .map(move |e| {
                                (
                                    class.clone(),
                                    e["extra_info"]["input_name"].as_str().unwrap().to_owned(),
                                    e["extra_info"]["received_value"]
                                        .as_str()
                                        .unwrap()
                                        .to_owned(),
                                )
                            })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let misfit = c.misfit(&Needs::of_workflow(&prompt));
        let found: BTreeSet<(String, String, String)> = misfit
            .iter()
            .flat_map(|m| &m.missing_values)
            .map(|p| (p.class.clone(), p.input.clone(), p.value.clone()))
            .collect();
        assert_eq!(found, refused, "{stem}");
        assert_eq!(
            misfit.is_none(),
            answer["status"] == 200,
            "{stem}: {misfit:?}"
        );
        checked += 1;
    }
    assert_eq!(checked, 5);
}

/// A prompt with a class the server lacks, as recorded (`038-prompt-unknown-class`).
#[test]
fn a_class_the_server_lacks_is_named() {
    for v in ["0.3.64", "0.33.0"] {
        let recorded = read(&repo().join(format!(
            "fixtures/comfyui-{v}/038-prompt-unknown-class.json"
        )));
        let body = &recorded["request"]["body"];
        let m = catalogue(v).misfit(&Needs::of_workflow(body)).unwrap();
        assert_eq!(m.kind(), "nodes", "{v}");
        assert!(!m.missing_classes.is_empty(), "{v}");
        assert!(recorded["response"]["status"] == 400, "{v}");
    }
}

/// Between releases the same prompt can stop fitting: the 0.33.0 frontend's LTX-2 prompt
/// uses nodes 0.6.0 does not have.
#[test]
fn an_older_release_lacks_newer_nodes() {
    let prompt = read(&repo().join("workflows/api-ground-truth/1.48.7/video_ltx2_t2v.api.json"));
    let m = catalogue("0.6.0")
        .misfit(&Needs::of_workflow(&prompt))
        .unwrap();
    assert_eq!(m.kind(), "nodes");
    assert!(m.to_string().starts_with("no node class "), "{m}");
}
