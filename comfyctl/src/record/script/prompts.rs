//! The prompt graphs the probes submit.

use serde_json::{Value, json};

/// EmptyImage → SaveImage, with `_meta` titles as the frontend sends them.
pub(super) fn image_prompt(color: u32, prefix: &str) -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": color}, "_meta": {"title": "EmptyImage"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}, "_meta": {"title": "Save Image"}},
    })
}

/// Eight 4096² images scaled and saved: seconds of work on a CPU, so the
/// queue probes see it running and waiting.
pub(super) fn slow_prompt(color: u32, prefix: &str) -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 4096, "height": 4096, "batch_size": 8, "color": color}},
        "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "bicubic", "width": 4000, "height": 4000, "crop": "disabled"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    })
}

/// Every output kind core nodes make without models.
pub(super) fn mixed_outputs_prompt() -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 4, "color": 255}},
        "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 8.0}},
        "3": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0], "filename_prefix": "video/fixture", "format": "auto", "codec": "auto"}},
        "4": {"class_type": "EmptyAudio", "inputs": {"duration": 0.5, "sample_rate": 8000, "channels": 1}},
        "5": {"class_type": "SaveAudio", "inputs": {"audio": ["4", 0], "filename_prefix": "audio/fixture"}},
        "6": {"class_type": "PrimitiveString", "inputs": {"value": "hello from a fixture"}},
        "7": {"class_type": "PreviewAny", "inputs": {"source": ["6", 0]}},
        "8": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["1", 0], "filename_prefix": "anim_fixture", "fps": 6.0, "lossless": false, "quality": 50, "method": "default"}},
        "9": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    })
}
