//! The node classes an emulated server knows: the recorded `/object_info`
//! of its version (fixture 018, see [`crate::recordings`]), or a small
//! built-in set of core nodes when a recorded set has none.

use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Node class → its `/object_info` description.
pub(crate) type Classes = Arc<Map<String, Value>>;

/// A few core nodes, enough for image-only prompts without models.
pub(crate) fn builtin() -> Classes {
    let int = |default: i64, min: i64, max: i64| json!(["INT", {"default": default, "min": min, "max": max}]);
    let node = |name: &str, required: Value, output: Value, output_node: bool| {
        json!({
            "input": {"required": required},
            "output": output,
            "name": name,
            "display_name": name,
            "category": "image",
            "output_node": output_node,
        })
    };
    let mut m = Map::new();
    m.insert(
        "EmptyImage".into(),
        node(
            "EmptyImage",
            json!({"width": int(512, 1, 16384), "height": int(512, 1, 16384),
                   "batch_size": int(1, 1, 4096), "color": int(0, 0, 16_777_215)}),
            json!(["IMAGE"]),
            false,
        ),
    );
    m.insert(
        "ImageInvert".into(),
        node(
            "ImageInvert",
            json!({"image": ["IMAGE", {}]}),
            json!(["IMAGE"]),
            false,
        ),
    );
    m.insert(
        "SaveImage".into(),
        node(
            "SaveImage",
            json!({"images": ["IMAGE", {}], "filename_prefix": ["STRING", {"default": "ComfyUI"}]}),
            json!([]),
            true,
        ),
    );
    m.insert(
        "PreviewImage".into(),
        node(
            "PreviewImage",
            json!({"images": ["IMAGE", {}]}),
            json!([]),
            true,
        ),
    );
    Arc::new(m)
}
