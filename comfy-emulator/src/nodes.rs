//! What the emulator knows about the nodes it runs: what flows along each
//! link (image sizes, text), how much work a node does, the UI output a node
//! reports, and how a failing node's inputs and traceback read in an
//! `execution_error`, as a real server writes them.

use crate::profile::Profile;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};

/// What a node hands on along a link, as far as the emulator follows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Data {
    /// An `IMAGE` tensor `[batch, height, width, 3]` filled with one colour.
    Image {
        /// Images in the batch.
        batch: u64,
        /// Pixels.
        height: u64,
        /// Pixels.
        width: u64,
        /// `0xRRGGBB`.
        color: u32,
    },
    /// A `VIDEO` made of images.
    Video,
    /// An `AUDIO` dict.
    Audio {
        /// Hz.
        sample_rate: u64,
    },
    /// A string.
    Text(String),
    /// Anything else: the producing class.
    Other(String),
}

impl Data {
    /// Megapixels held (images only).
    pub(crate) fn megapixels(&self) -> f64 {
        match self {
            Data::Image {
                batch,
                height,
                width,
                ..
            } => (*batch as f64) * (*height as f64) * (*width as f64) / 1e6,
            _ => 0.0,
        }
    }

    /// The value as `current_inputs` shows it: plain values as they are,
    /// everything else as Python's `str()`.
    pub(crate) fn shown(&self) -> Value {
        match self {
            Data::Image {
                batch,
                height,
                width,
                color,
            } => Value::String(image_tensor_repr(*batch, *height, *width, *color)),
            Data::Video => Value::String(
                "<comfy_api.latest._input_impl.video_types.VideoFromComponents object at 0x7f3a5c2e1d50>"
                    .into(),
            ),
            Data::Audio { sample_rate } => Value::String(format!(
                "{{'waveform': tensor([[[0., 0., 0.,  ..., 0., 0., 0.]]]), 'sample_rate': {sample_rate}}}"
            )),
            Data::Text(s) => Value::String(s.clone()),
            Data::Other(class) => Value::String(format!("<{class} output at 0x7f3a5c2e1d50>")),
        }
    }
}

fn node<'p>(prompt: &'p Map<String, Value>, id: &str) -> Option<(&'p str, &'p Map<String, Value>)> {
    let n = prompt.get(id)?;
    let class = n.get("class_type")?.as_str()?;
    let inputs = n.get("inputs")?.as_object()?;
    Some((class, inputs))
}

/// `["1", 0]`: the node and slot an input is linked to.
pub(crate) fn link(v: &Value) -> Option<(&str, u64)> {
    match v.as_array()?.as_slice() {
        [Value::String(from), slot] => Some((from.as_str(), slot.as_u64()?)),
        _ => None,
    }
}

fn int(inputs: &Map<String, Value>, k: &str, default: u64) -> u64 {
    inputs.get(k).and_then(Value::as_u64).unwrap_or(default)
}

/// What output `slot` of node `id` carries.
///
/// Each node output is worked out once (a node whose inputs all come from
/// one node is not followed twice per level), and a link back into the
/// path being followed (a cycle) carries nothing known, so the work is
/// linear in the size of the prompt whatever its shape.
pub(crate) fn data_of(prompt: &Map<String, Value>, id: &str, slot: u64) -> Data {
    let mut walk = DataWalk {
        prompt,
        known: HashMap::new(),
        open: HashSet::new(),
    };
    walk.data(id, slot, 0)
}

/// The outputs worked out so far and the path being followed.
struct DataWalk<'a> {
    prompt: &'a Map<String, Value>,
    known: HashMap<(&'a str, u64), Data>,
    open: HashSet<(&'a str, u64)>,
}

impl<'a> DataWalk<'a> {
    fn data(&mut self, id: &'a str, slot: u64, depth: usize) -> Data {
        if let Some(d) = self.known.get(&(id, slot)) {
            return d.clone();
        }
        if !self.open.insert((id, slot)) {
            // Round a cycle: ComfyUI never runs such a node.
            return Data::Other(String::new());
        }
        let d = data_at(self, id, slot, depth);
        self.open.remove(&(id, slot));
        self.known.insert((id, slot), d.clone());
        d
    }
}

fn data_at<'a>(walk: &mut DataWalk<'a>, id: &'a str, slot: u64, depth: usize) -> Data {
    let prompt = walk.prompt;
    let Some((class, inputs)) = node(prompt, id) else {
        return Data::Other(String::new());
    };
    if depth > 64 {
        return Data::Other(class.to_owned());
    }
    let mut input = |k: &str| {
        inputs
            .get(k)
            .and_then(link)
            .map(|(from, s)| walk.data(from, s, depth + 1))
    };
    match class {
        "EmptyImage" => Data::Image {
            batch: int(inputs, "batch_size", 1),
            height: int(inputs, "height", 512),
            width: int(inputs, "width", 512),
            color: u32::try_from(int(inputs, "color", 0)).unwrap_or(0),
        },
        "ImageScale" | "ImageScaleBy" => match input("image") {
            Some(Data::Image {
                batch,
                height,
                width,
                color,
            }) => {
                let (h, w) = if class == "ImageScale" {
                    (
                        Some(int(inputs, "height", 0)).filter(|h| *h > 0),
                        Some(int(inputs, "width", 0)).filter(|w| *w > 0),
                    )
                } else {
                    let by = inputs
                        .get("scale_by")
                        .and_then(Value::as_f64)
                        .unwrap_or(1.0);
                    (
                        Some((height as f64 * by).round() as u64),
                        Some((width as f64 * by).round() as u64),
                    )
                };
                Data::Image {
                    batch,
                    height: h.unwrap_or(height),
                    width: w.unwrap_or(width),
                    color,
                }
            }
            _ => Data::Other(class.to_owned()),
        },
        "CreateVideo" => Data::Video,
        "EmptyAudio" => Data::Audio {
            sample_rate: int(inputs, "sample_rate", 44100),
        },
        "PrimitiveString" | "PrimitiveStringMultiline" => Data::Text(
            inputs
                .get("value")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        ),
        _ if slot == 0 => {
            // Image filters keep the size of the image they are given.
            let first_image = inputs.values().filter_map(link).find_map(|(from, s)| {
                match walk.data(from, s, depth + 1) {
                    d @ Data::Image { .. } => Some(d),
                    _ => None,
                }
            });
            first_image.unwrap_or_else(|| Data::Other(class.to_owned()))
        }
        _ => Data::Other(class.to_owned()),
    }
}

/// Megapixels node `id` processes: the largest image it reads or makes.
pub(crate) fn megapixels(prompt: &Map<String, Value>, id: &str) -> f64 {
    let Some((_, inputs)) = node(prompt, id) else {
        return 0.0;
    };
    let read = inputs
        .values()
        .filter_map(link)
        .map(|(from, s)| data_of(prompt, from, s).megapixels())
        .fold(0.0, f64::max);
    read.max(data_of(prompt, id, 0).megapixels())
}

/// Nodes that are one tensor operation: an interrupt is only seen when the
/// next node starts (ComfyUI checks between nodes and in nodes that loop).
pub(crate) fn atomic(class: &str) -> bool {
    matches!(
        class,
        "EmptyImage" | "ImageScale" | "ImageScaleBy" | "EmptyAudio" | "PrimitiveString"
    )
}

/// `torch`'s `repr` of a `[batch, height, width, 3]` float tensor of one
/// colour, summarised as torch prints tensors of more than 1000 values.
pub(crate) fn image_tensor_repr(batch: u64, height: u64, width: u64, color: u32) -> String {
    let channels = [(color >> 16) & 0xff, (color >> 8) & 0xff, color & 0xff];
    let values: Vec<f64> = channels.iter().map(|c| f64::from(*c) / 255.0).collect();
    let ints = values.iter().all(|v| v.fract() == 0.0);
    let cells: Vec<String> = values
        .iter()
        .map(|v| {
            if ints {
                format!("{v:.0}.")
            } else {
                format!("{v:.4}")
            }
        })
        .collect();
    let widest = cells.iter().map(String::len).max().unwrap_or(0);
    let cells: Vec<String> = cells.iter().map(|c| format!("{c:>widest$}")).collect();
    let dims = [batch, height, width, 3];
    let summarise = dims.iter().product::<u64>() > 1000;
    format!("tensor({})", tensor_level(&dims, 7, summarise, &cells))
}

fn tensor_level(dims: &[u64], indent: usize, summarise: bool, cells: &[String]) -> String {
    let Some((&n, rest)) = dims.split_first() else {
        return String::new();
    };
    let shown: Vec<Option<u64>> = if summarise && n > 6 {
        (0..3)
            .map(Some)
            .chain(std::iter::once(None))
            .chain((n - 3..n).map(Some))
            .collect()
    } else {
        (0..n).map(Some).collect()
    };
    let parts: Vec<String> = shown
        .iter()
        .map(|i| match i {
            None => "...".to_owned(),
            Some(i) if rest.is_empty() => cells
                .get(usize::try_from(*i).unwrap_or(0))
                .cloned()
                .unwrap_or_default(),
            Some(_) => tensor_level(rest, indent + 1, summarise, cells),
        })
        .collect();
    let sep = if rest.is_empty() {
        ", ".to_owned()
    } else {
        format!(",{}{}", "\n".repeat(dims.len() - 1), " ".repeat(indent + 1))
    };
    format!("[{}]", parts.join(&sep))
}

/// Python's `repr` of a JSON value (dicts, lists, strings, numbers).
pub(crate) fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => {
            if n.is_f64() {
                let f = n.as_f64().unwrap_or_default();
                if f.fract() == 0.0 && f.abs() < 1e16 {
                    format!("{f:.1}")
                } else {
                    format!("{f}")
                }
            } else {
                n.to_string()
            }
        }
        Value::String(s) => py_str(s),
        Value::Array(a) => format!("[{}]", a.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{}: {}", py_str(k), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn py_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `current_inputs` of a failing node: every input as a one-item list
/// (linked values as Python prints them), then its hidden inputs.
pub(crate) fn current_inputs(
    prompt: &Map<String, Value>,
    extra_data: &Map<String, Value>,
    id: &str,
    class_info: Option<&Value>,
) -> Value {
    let mut out = Map::new();
    if let Some((_, inputs)) = node(prompt, id) {
        for (k, v) in inputs {
            let shown = match link(v) {
                Some((from, slot)) => data_of(prompt, from, slot).shown(),
                None => v.clone(),
            };
            out.insert(k.clone(), json!([shown]));
        }
    }
    let hidden = class_info
        .and_then(|c| c.pointer("/input/hidden"))
        .and_then(Value::as_object);
    for (name, kind) in hidden.into_iter().flatten() {
        let kind = match kind {
            Value::Array(a) => a.first().and_then(Value::as_str).unwrap_or_default(),
            other => other.as_str().unwrap_or_default(),
        };
        let value = match kind {
            "PROMPT" => Value::String(py_repr(&Value::Object(prompt.clone()))),
            "EXTRA_PNGINFO" => extra_data
                .get("extra_pnginfo")
                .cloned()
                .unwrap_or(Value::Null),
            "UNIQUE_ID" => Value::String(id.to_owned()),
            "DYNPROMPT" => Value::String(
                "<comfy_execution.graph.DynamicPrompt object at 0x7f3a5c2e1e90>".into(),
            ),
            _ => Value::Null,
        };
        out.insert(name.clone(), json!([value]));
    }
    Value::Object(out)
}

/// One traceback frame as Python prints it, the failing expression marked.
fn frame(file: &str, line: u32, func: &str, code: &str, marked_from: Option<&str>) -> String {
    let mut f = format!("  File \"/opt/ComfyUI/{file}\", line {line}, in {func}\n    {code}\n");
    if let Some(start) = marked_from.and_then(|m| code.find(m)) {
        let width = code.len() - start;
        f.push_str(&" ".repeat(4 + start));
        f.push_str(&"^".repeat(width));
        f.push('\n');
    }
    f
}

/// The traceback of an exception raised in a node's function; `tail` are
/// the frames inside the node.
pub(crate) fn traceback(profile: &Profile, tail: Vec<String>) -> Vec<String> {
    let [execute, get_output, map, process] = profile.source_lines.execute;
    let extra = if profile.v3_node_data() {
        "v3_data=v3_data"
    } else {
        "hidden_inputs=hidden_inputs"
    };
    let mut frames = vec![
        frame(
            "execution.py",
            execute,
            "execute",
            &format!(
                "output_data, output_ui, has_subgraph, has_pending_tasks = await get_output_data(prompt_id, unique_id, obj, input_data_all, execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, {extra})"
            ),
            Some("await"),
        ),
        frame(
            "execution.py",
            get_output,
            "get_output_data",
            &format!(
                "return_values = await _async_map_node_over_list(prompt_id, unique_id, obj, input_data_all, obj.FUNCTION, allow_interrupt=True, execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, {extra})"
            ),
            Some("await"),
        ),
        frame(
            "execution.py",
            map,
            "_async_map_node_over_list",
            "await process_inputs(input_dict, i)",
            None,
        ),
        frame(
            "execution.py",
            process,
            "process_inputs",
            "result = f(**inputs)",
            Some("f(**inputs)"),
        ),
    ];
    frames.extend(tail);
    frames
}

/// The frames inside `SaveImage` when the prefix leaves the output folder.
pub(crate) fn save_outside_frames(profile: &Profile) -> Vec<String> {
    let (nodes_line, folder_line) = (
        profile.source_lines.save_images,
        profile.source_lines.get_save_image_path,
    );
    vec![
        frame(
            "nodes.py",
            nodes_line,
            "save_images",
            "full_output_folder, filename, counter, subfolder, filename_prefix = folder_paths.get_save_image_path(filename_prefix, self.output_dir, images[0].shape[1], images[0].shape[0])",
            Some("folder_paths."),
        ),
        frame(
            "folder_paths.py",
            folder_line,
            "get_save_image_path",
            "raise Exception(err)",
            None,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_colour_image_prints_as_torch_prints_it() {
        let row = "[0.0000, 0.0000, 0.0275]";
        let s = image_tensor_repr(1, 64, 64, 7);
        assert!(s.starts_with(&format!("tensor([[[{row},\n          {row},")));
        assert!(s.contains(&format!("...,\n          {row}")));
        assert!(s.contains("]],\n\n         ...,\n\n         [["));
        assert!(s.ends_with(&format!("{row}]]])")));
        assert_eq!(s.len(), 1413);
        assert!(image_tensor_repr(1, 2, 2, 0).starts_with("tensor([[[[0., 0., 0.],"));
    }

    #[test]
    fn python_repr_of_a_prompt() {
        let v =
            json!({"1": {"inputs": {"w": 64, "f": 8.0, "s": "it's", "l": ["1", 0], "n": null}}});
        assert_eq!(
            py_repr(&v),
            r#"{'1': {'inputs': {'w': 64, 'f': 8.0, 's': "it's", 'l': ['1', 0], 'n': None}}}"#
        );
    }

    #[test]
    fn the_slow_prompt_processes_about_134_megapixels_per_node() {
        let p = json!({
            "1": {"class_type": "EmptyImage", "inputs": {"width": 4096, "height": 4096, "batch_size": 8, "color": 1}},
            "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "bicubic", "width": 4000, "height": 4000, "crop": "disabled"}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "slow"}},
        });
        let p = p.as_object().cloned().unwrap_or_default();
        assert!((megapixels(&p, "1") - 134.2).abs() < 0.1);
        assert!((megapixels(&p, "2") - 134.2).abs() < 0.1);
        assert!((megapixels(&p, "3") - 128.0).abs() < 0.1);
        assert_eq!(
            data_of(&p, "2", 0),
            Data::Image {
                batch: 8,
                height: 4000,
                width: 4000,
                color: 1
            }
        );
    }
}
