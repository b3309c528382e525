//! One test per rule of `convert::frontend::RULES`, each written from what
//! the frontend's source does (the row's `source` names the file) and run
//! on the recorded catalogue of a real release.

use super::catalogue;
use comfyctl::convert::frontend::{Frontend, RULES, Rule, TitleOrder};
use comfyctl::convert::{self, ConvertOptions};
use serde_json::{Value, json};

fn fe(v: &str) -> Frontend {
    Frontend::parse(v).unwrap()
}

/// Converts a workflow of one node `1` (plus what `extra` adds) and returns
/// that node's prompt entry.
fn one_node(server: &str, frontend: &str, kind: &str, inputs: Value, wv: Value) -> Value {
    let ui = json!({
        "nodes": [{"id": 1, "type": kind, "mode": 0, "inputs": inputs, "outputs": [],
                   "properties": {}, "widgets_values": wv}],
        "links": [], "version": 0.4
    });
    let opts = ConvertOptions::for_frontend(fe(frontend));
    let got = convert::convert(&ui, &catalogue(server), &opts)
        .unwrap_or_else(|e| panic!("{kind} on {server} × {frontend}: {e}"));
    got["1"].clone()
}

#[test]
fn every_row_has_a_source_and_a_sane_range() {
    for row in RULES {
        assert!(!row.source.is_empty(), "{row:?}");
        if let (Some(s), Some(u)) = (row.since, row.until) {
            assert!(s < u, "{row:?}");
        }
    }
}

#[test]
fn versions_parse_with_or_without_v_and_reject_junk() {
    assert_eq!(fe("v1.37.11").to_string(), "1.37.11");
    assert!(Frontend::parse("1.37").is_err());
    assert!(Frontend::parse("latest").is_err());
}

#[test]
fn the_default_frontend_is_the_one_the_release_pins() {
    for (server, pinned) in [
        ("0.3.64", "1.27.10"),
        ("0.6.0", "1.34.9"),
        ("0.9.2", "1.36.14"),
        ("0.11.1", "1.37.11"),
        ("0.26.0", "1.45.19"),
        ("0.33.0", "1.48.7"),
        ("0.34.0", "1.48.7"),
    ] {
        let v = semver::Version::parse(server).unwrap();
        assert_eq!(Frontend::pinned_by(&v).to_string(), pinned, "{server}");
        assert_eq!(
            ConvertOptions::for_server(&v).frontend,
            Some(fe(pinned)),
            "{server}"
        );
    }
}

#[test]
fn audio_players_are_sent_as_empty_strings_until_1_48_7() {
    // uploadAudio.ts: required.audioUI = ['AUDIO_UI'] on the audio classes;
    // 1.37.11 sets only widget.serialize = false (no position in
    // widgets_values, still sent as the DOM widget's ""), 1.48.7 also sets
    // options.serialize = false. The upload button keeps its position.
    let wv = json!(["song.mp3", null]);
    let old = one_node("0.11.1", "1.37.11", "LoadAudio", json!([]), wv.clone());
    assert_eq!(old["inputs"], json!({"audio": "song.mp3", "audioUI": ""}));
    let new = one_node("0.33.0", "1.48.7", "LoadAudio", json!([]), wv.clone());
    assert_eq!(new["inputs"], json!({"audio": "song.mp3"}));
    // Without a frontend, the catalogue alone: no player.
    let ui = json!({"nodes": [{"id": 1, "type": "LoadAudio", "mode": 0, "inputs": [],
        "outputs": [], "properties": {}, "widgets_values": wv}], "links": []});
    let bare = convert::convert(&ui, &catalogue("0.11.1"), &ConvertOptions::default()).unwrap();
    assert_eq!(bare["1"]["inputs"], json!({"audio": "song.mp3"}));
}

#[test]
fn the_audio_player_comes_after_every_declared_widget_and_before_links() {
    // Not named by input_order, so after `quality`; links come last.
    let mp3 = one_node(
        "0.11.1",
        "1.37.11",
        "SaveAudioMP3",
        json!([{"name": "audio", "type": "AUDIO", "link": null}]),
        json!(["audio/x", "320k"]),
    );
    let keys: Vec<&String> = mp3["inputs"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["filename_prefix", "quality", "audioUI"]);
    assert_eq!(mp3["inputs"]["quality"], "320k");
}

#[test]
fn a_3d_preview_gets_an_image_widget_that_takes_a_position_and_is_sent() {
    // load3d.ts: Preview3D gets required.image = ['PREVIEW_3D'], a
    // component widget with default flags: saved and sent (its value "").
    let node = one_node(
        "0.11.1",
        "1.37.11",
        "Preview3D",
        json!([]),
        json!(["mesh/a.glb", ""]),
    );
    assert_eq!(
        node["inputs"],
        json!({"model_file": "mesh/a.glb", "image": ""})
    );
}

#[test]
fn image_compare_is_saved_until_1_45_19_and_then_only_sent() {
    let old = one_node(
        "0.11.1",
        "1.37.11",
        "ImageCompare",
        json!([]),
        json!([["a.png", "b.png"]]),
    );
    assert_eq!(
        old["inputs"]["compare_view"],
        json!({"__value__": ["a.png", "b.png"]})
    );
    // 1.45.19 on: widget.serialize = false, the value is its initial ['', ''].
    let new = one_node(
        "0.33.0",
        "1.48.7",
        "ImageCompare",
        json!([]),
        json!([["a.png", "b.png"]]),
    );
    assert_eq!(
        new["inputs"]["compare_view"],
        json!({"__value__": ["", ""]})
    );
}

#[test]
fn a_frontend_widget_type_takes_its_position_so_later_values_do_not_shift() {
    // TextOverlay: text, font_size, color (COLOR), position, align, outline.
    // A converter that did not know COLOR would send "#ff0000" as position.
    let wv = json!(["hi", 7.5, "#ff0000", "bottom", "center", true]);
    let node = one_node("0.33.0", "1.48.7", "TextOverlay", json!([]), wv.clone());
    assert_eq!(node["inputs"]["color"], "#ff0000");
    assert_eq!(node["inputs"]["position"], "bottom");
    assert_eq!(node["inputs"]["align"], "center");
    assert_eq!(node["inputs"]["outline"], true);
    let ui = json!({"nodes": [{"id": 1, "type": "TextOverlay", "mode": 0, "inputs": [],
        "outputs": [], "properties": {}, "widgets_values": wv}], "links": []});
    let bare = convert::convert(&ui, &catalogue("0.33.0"), &ConvertOptions::default()).unwrap();
    assert_eq!(
        bare["1"]["inputs"]["position"], "#ff0000",
        "the catalogue alone shifts the values (what this rule fixes)"
    );
}

#[test]
fn a_bounding_box_is_followed_by_four_saved_unsent_number_fields() {
    // useBoundingBoxWidget.ts: the box, then x, y, width, height number
    // widgets with options.serialize false (saved, never sent).
    let bbox = json!({"x": 8, "y": 16, "width": 64, "height": 32});
    let node = one_node(
        "0.33.0",
        "1.48.7",
        "ImageCropV2",
        json!([]),
        json!([bbox, 8, 16, 64, 32]),
    );
    assert_eq!(node["inputs"], json!({"crop_region": bbox}));
}

#[test]
fn curves_are_sent_typed_by_the_frontends_that_draw_them() {
    // executionUtil.ts 1.45.19–1.58.1: a curve widget is sent as
    // {__type__: 'CURVE', __value__}; 1.37.11 has no CURVE widget at all,
    // so the input is a socket there and nothing is sent.
    let curve = json!({"points": [[0.0, 0.0], [1.0, 0.5]], "interpolation": "linear"});
    for frontend in ["1.45.19", "1.48.7", "1.58.1"] {
        let node = one_node("0.33.0", frontend, "CurveEditor", json!([]), json!([curve]));
        assert_eq!(
            node["inputs"]["curve"],
            json!({"__type__": "CURVE", "__value__": curve}),
            "{frontend}"
        );
    }
    let old = one_node(
        "0.33.0",
        "1.37.11",
        "CurveEditor",
        json!([]),
        json!([curve]),
    );
    assert_eq!(old["inputs"], json!({}));
}

#[test]
fn custom_combo_sends_its_option_fields() {
    // customCombo.ts / customWidgets.ts: a string widget option<N> per
    // option after `choice`, the last one empty.
    let node = one_node(
        "0.33.0",
        "1.48.7",
        "CustomCombo",
        json!([]),
        json!(["b", "a", "b", ""]),
    );
    assert_eq!(
        node["inputs"],
        json!({"choice": "b", "option0": "a", "option1": "b", "option2": ""})
    );
}

#[test]
fn load_3d_buttons_take_positions_before_the_scene() {
    // load3d.ts LOAD_3D: buttons `upload 3d model`, `upload extra
    // resources`, `clear`, then the scene widget, then width and height.
    let node = one_node(
        "0.11.1",
        "1.37.11",
        "Load3D",
        json!([]),
        json!([
            "m.glb",
            "upload3dmodel",
            "uploadExtraResources",
            "clear",
            "threed/s.png",
            640,
            480
        ]),
    );
    assert_eq!(
        node["inputs"],
        json!({"model_file": "m.glb", "upload 3d model": "upload3dmodel",
               "upload extra resources": "uploadExtraResources", "clear": "clear",
               "image": "threed/s.png", "width": 640, "height": 480})
    );
}

#[test]
fn titles_come_from_the_locale_first_until_1_58_1() {
    // app.ts getNodeDefs (≤1.48.7): st(`nodeDefs.${name}.display_name`,
    // server name); i18n.ts resolveNodeDefText (1.58.1): the server's name
    // first in English, the bundled locale only when it sends none.
    assert_eq!(fe("1.48.7").title_order(), TitleOrder::LocaleFirst);
    assert_eq!(fe("1.58.1").title_order(), TitleOrder::ServerFirst);
    let on_0_33 = |frontend: &str, kind: &str| {
        one_node("0.33.0", frontend, kind, json!([]), json!([]))["_meta"]["title"].clone()
    };
    assert_eq!(
        on_0_33("1.48.7", "LTXVConcatAVLatent"),
        "LTXVConcatAVLatent"
    );
    assert_eq!(on_0_33("1.58.1", "LTXVConcatAVLatent"), "Concat AV Latent");
    // 0.33.0 sends no display_name for this class: the locale's.
    assert_eq!(
        on_0_33("1.58.1", "StableCascade_EmptyLatentImage"),
        "Empty Stable Cascade Latent Image"
    );
    // 1.37.11's locale still says LoraLoaderModelOnly where 0.11.1 says
    // "Load LoRA".
    let lora = one_node(
        "0.11.1",
        "1.37.11",
        "LoraLoaderModelOnly",
        json!([]),
        json!(["x.safetensors", 1.0]),
    );
    assert_eq!(lora["_meta"]["title"], "LoraLoaderModelOnly");
}

#[test]
fn a_frontend_between_recorded_ones_behaves_as_the_one_before_it() {
    // 1.40 renumbers (RenumberSubgraphIds since 1.40), sends the audio
    // player (until 1.48.7) and reads 1.37.11's locale snapshot.
    let mid = fe("1.40.0");
    assert!(mid.has(Rule::RenumberSubgraphIds));
    assert!(!fe("1.37.11").has(Rule::RenumberSubgraphIds));
    assert_eq!(
        mid.locale_title("LoraLoaderModelOnly"),
        Some("LoraLoaderModelOnly")
    );
    let node = one_node("0.11.1", "1.40.0", "LoadAudio", json!([]), json!(["s.wav"]));
    assert_eq!(node["inputs"]["audioUI"], "");
}

#[test]
fn dynamic_combo_inputs_are_named_after_the_combo_and_a_nested_seed_has_no_control() {
    // dynamicWidgets.ts: the chosen option's inputs are inserted right
    // after the combo, named `${combo}.${key}` (required, then optional)
    // before their widgets are made; useIntWidget.ts adds
    // control_after_generate only to inputs named `seed` / `noise_seed`,
    // so `sampling_mode.seed` has none and takes one position.
    let wv = json!([
        "hello", 256, "on", 0.5, 10, 0.9, 0.1, 1.1, 42, 0.2, true, false
    ]);
    let node = one_node("0.33.0", "1.48.7", "TextGenerate", json!([]), wv);
    assert_eq!(
        node["inputs"],
        json!({
            "prompt": "hello", "max_length": 256, "sampling_mode": "on",
            "sampling_mode.temperature": 0.5, "sampling_mode.top_k": 10,
            "sampling_mode.top_p": 0.9, "sampling_mode.min_p": 0.1,
            "sampling_mode.repetition_penalty": 1.1, "sampling_mode.seed": 42,
            "sampling_mode.presence_penalty": 0.2,
            "thinking": true, "use_default_template": false
        })
    );
    let keys: Vec<&String> = node["inputs"].as_object().unwrap().keys().collect();
    assert_eq!(keys[3], "sampling_mode.temperature");
}

#[test]
fn the_request_body_carries_the_usage_source_from_1_48_7() {
    assert!(fe("1.37.11").extra_data().is_empty());
    assert_eq!(
        Value::Object(fe("1.48.7").extra_data()),
        json!({"comfy_usage_source": "comfyui-frontend"})
    );
}

#[test]
fn preview_any_sends_its_text_and_mode_until_1_48_7() {
    // previewAny.ts 1.37.11: `preview` text widgets (not saved, sent as "")
    // and a saved `previewMode` BOOLEAN; 1.48.7's textPreviewWidgets.ts
    // sets both flags false on both.
    let source = json!([{"name": "source", "type": "*", "link": null}]);
    let old = one_node(
        "0.11.1",
        "1.37.11",
        "PreviewAny",
        source.clone(),
        json!([true]),
    );
    assert_eq!(old["inputs"], json!({"preview": "", "previewMode": true}));
    let new = one_node("0.33.0", "1.48.7", "PreviewAny", source, json!([]));
    assert_eq!(new["inputs"], json!({}));
}

#[test]
fn a_webcam_keeps_its_saved_value_and_its_position() {
    let node = one_node(
        "0.11.1",
        "1.37.11",
        "WebcamCapture",
        json!([]),
        json!(["webcam/1.png [temp]", 640, 480, false, null]),
    );
    assert_eq!(
        node["inputs"],
        json!({"image": "webcam/1.png [temp]", "width": 640, "height": 480,
               "capture_on_queue": false})
    );
}

#[test]
fn pack_metadata_rides_in_meta_from_1_58_1_when_valid() {
    use comfyctl::convert::frontend::pack_metadata;
    let props = |v: Value| v.as_object().unwrap().clone();
    assert_eq!(
        pack_metadata(&props(json!({"cnr_id": "comfy-core", "ver": "0.3.71"}))),
        [
            ("cnr_id", "comfy-core".to_owned()),
            ("ver", "0.3.71".to_owned())
        ]
    );
    assert_eq!(
        pack_metadata(&props(
            json!({"aux_id": "someone/my-nodes", "ver": "v1.2.0"})
        )),
        [
            ("aux_id", "someone/my-nodes".to_owned()),
            ("ver", "1.2.0".to_owned())
        ]
    );
    assert_eq!(
        pack_metadata(&props(json!({"ver": "a1b2c3d"}))),
        [("ver", "a1b2c3d".to_owned())]
    );
    assert_eq!(
        pack_metadata(&props(json!({"ver": "unknown"}))),
        [("ver", "unknown".to_owned())]
    );
    // Invalid ones are left out, as the frontend's schema drops them.
    assert!(
        pack_metadata(&props(
            json!({"cnr_id": "-bad", "aux_id": "no-slash", "ver": "1.2"})
        ))
        .is_empty()
    );
    assert!(pack_metadata(&props(json!({"ver": "01.2.3"}))).is_empty());
    let ui = json!({"nodes": [{"id": 1, "type": "EmptyImage", "mode": 0, "inputs": [], "outputs": [],
        "properties": {"cnr_id": "comfy-core", "ver": "0.3.71"}, "widgets_values": [8, 8, 1, 0]}],
        "links": []});
    let cat = catalogue("0.33.0");
    let new = convert::convert(&ui, &cat, &ConvertOptions::for_frontend(fe("1.58.1"))).unwrap();
    assert_eq!(
        new["1"]["_meta"],
        json!({"title": "Empty Image", "cnr_id": "comfy-core", "ver": "0.3.71"})
    );
    let old = convert::convert(&ui, &cat, &ConvertOptions::for_frontend(fe("1.48.7"))).unwrap();
    assert_eq!(old["1"]["_meta"], json!({"title": "Empty Image"}));
}

#[test]
fn promoted_interior_widgets_take_the_instance_value_from_1_48_7_and_null_from_1_58_1() {
    // proxyWidgetMigration.ts (1.48.7 on): `["20", "width"]` on the
    // instance becomes a promoted input whose value is the instance's
    // widgets_values at that entry's position; a null there is a hole in
    // 1.48.7 (isWidgetValue(null) is false) and a value in 1.58.1. 1.37.11
    // and 1.45.19 apply only `-1` entries: the interior keeps its own.
    let def = "cccccccc-0000-4000-8000-000000000003";
    let ui = json!({
        "last_node_id": 11,
        "nodes": [
            {"id": 10, "type": def, "mode": 0, "inputs": [],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}],
             "properties": {"proxyWidgets": [["20", "width"]]}, "widgets_values": [96]},
            {"id": 11, "type": "SaveImage", "mode": 0,
             "inputs": [{"name": "images", "type": "IMAGE", "link": 1}], "outputs": [],
             "properties": {}, "widgets_values": ["x"]}
        ],
        "links": [[1, 10, 0, 11, 0, "IMAGE"]],
        "definitions": {"subgraphs": [{
            "id": def, "name": "C", "inputs": [], "outputs": [{"name": "IMAGE", "type": "IMAGE"}],
            "nodes": [{"id": 20, "type": "EmptyImage", "mode": 0, "inputs": [],
                       "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [2]}],
                       "properties": {}, "widgets_values": [16, 16, 1, 0]}],
            "links": [{"id": 2, "origin_id": 20, "origin_slot": 0, "target_id": -20,
                       "target_slot": 0, "type": "IMAGE"}]
        }]},
        "version": 0.4
    });
    let width = |saved: Value, frontend: &str, server: &str| {
        let mut ui = ui.clone();
        ui["nodes"][0]["widgets_values"] = json!([saved]);
        let opts = ConvertOptions::for_frontend(fe(frontend));
        convert::convert(&ui, &catalogue(server), &opts).unwrap()["10:20"]["inputs"]["width"]
            .clone()
    };
    assert_eq!(width(json!(96), "1.37.11", "0.11.1"), 16);
    assert_eq!(width(json!(96), "1.45.19", "0.26.0"), 16);
    assert_eq!(width(json!(96), "1.48.7", "0.33.0"), 96);
    assert_eq!(width(Value::Null, "1.48.7", "0.33.0"), 16);
    assert_eq!(width(json!(96), "1.58.1", "0.33.0"), 96);
    assert_eq!(width(Value::Null, "1.58.1", "0.33.0"), Value::Null);
}

#[test]
fn a_load_audio_player_shows_its_file_url_with_1_45_19() {
    // uploadAudio.ts 1.45.19: the upload widget sets the player to
    // api.apiURL(getResourceURL(...splitFilePath(audio))): the name
    // encoded, the folder not, and a random `rand` (written as 0 here).
    let node = one_node(
        "0.26.0",
        "1.45.19",
        "LoadAudio",
        json!([]),
        json!(["voices/my take (1).wav", null]),
    );
    assert_eq!(
        node["inputs"]["audioUI"],
        "/api/view?filename=my%20take%20(1).wav&type=input&subfolder=voices&rand=0"
    );
    // An output node's player has no file yet.
    let save = one_node(
        "0.26.0",
        "1.45.19",
        "SaveAudioMP3",
        json!([{"name": "audio", "type": "AUDIO", "link": null}]),
        json!(["audio/x", "V0"]),
    );
    assert_eq!(save["inputs"]["audioUI"], "");
}

#[test]
fn the_oldest_recorded_frontend_draws_fewer_widgets() {
    // 1.27.10 (0.3.64): PreviewAny has one `preview` STRING and no
    // previewMode (previewAny.ts); SaveGLB gets no 3D preview (saveMesh.ts
    // arrives with 1.34.9); Preview3DAnimation gets an `image` preview.
    let any = one_node(
        "0.3.64",
        "1.27.10",
        "PreviewAny",
        json!([{"name": "source", "type": "*", "link": null}]),
        json!([]),
    );
    assert_eq!(any["inputs"], json!({"preview": ""}));
    let glb = one_node(
        "0.3.64",
        "1.27.10",
        "SaveGLB",
        json!([{"name": "mesh", "type": "MESH", "link": null}]),
        json!(["mesh/x"]),
    );
    assert_eq!(glb["inputs"], json!({"filename_prefix": "mesh/x"}));
    let newer = one_node(
        "0.6.0",
        "1.34.9",
        "SaveGLB",
        json!([{"name": "mesh", "type": "MESH", "link": null}]),
        json!(["mesh/x", ""]),
    );
    assert_eq!(
        newer["inputs"],
        json!({"filename_prefix": "mesh/x", "image": ""})
    );
    let anim = one_node(
        "0.3.64",
        "1.27.10",
        "Preview3DAnimation",
        json!([]),
        json!(["a.glb", ""]),
    );
    assert_eq!(anim["inputs"], json!({"model_file": "a.glb", "image": ""}));
}
