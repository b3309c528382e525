//! Widget values → input names, from a node class's `/object_info` entry.
//!
//! The frontend gives a node one widget per widget-typed input (INT, FLOAT,
//! STRING, BOOLEAN, COMBO, dynamic combos), in declared order (`required`
//! then `optional`), and saves their values positionally in
//! `widgets_values`. Some widgets only live in the frontend and are saved
//! but never sent: `control_after_generate` after a seed-like INT (and,
//! with `control_filter_list`, after a COMBO that declares it), and the
//! `upload` button after an upload COMBO.
//!
//! A frontend version adds its own widgets on top (see
//! [`super::frontend::RULES`]): widget types the server declares but only
//! the frontend draws (`IMAGECOMPARE`, `BOUNDING_BOX`, ...), inputs it adds
//! to some classes (`audioUI`, a 3D preview's `image`), `CustomCombo`'s
//! option fields. Each takes a position in `widgets_values` or not, and is
//! sent or not, as that frontend does it; a widget the converter did not
//! know would shift every later value onto the wrong input.

use super::frontend::{Frontend, Rule, Sent};
use serde_json::{Map, Value};

/// Input types the frontend draws as a widget.
const WIDGET_TYPES: [&str; 6] = ["INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", DYNAMIC_COMBO];

/// A V3 combo whose chosen option brings its own nested inputs.
pub const DYNAMIC_COMBO: &str = "COMFY_DYNAMICCOMBO_V3";

/// Upload buttons that follow a COMBO (saved, never sent).
const UPLOAD_FLAGS: [&str; 5] = [
    "image_upload",
    "video_upload",
    "audio_upload",
    "animated_image_upload",
    "model_upload",
];

/// One slot of a node's `widgets_values`.
#[derive(Debug, Clone, PartialEq)]
pub enum Widget {
    /// A widget backing input `name`.
    Input {
        /// API input name.
        name: String,
        /// The input's spec (`[type, options]`).
        spec: Value,
        /// It takes a position in `widgets_values`.
        saved: bool,
        /// What goes into the prompt.
        sent: Sent,
        /// Its value when the save has none (`None`: from the spec).
        default: Option<Value>,
    },
    /// A frontend-only widget (`control_after_generate`, `upload`, ...).
    FrontendOnly(&'static str),
}

/// One declared input of a class: `(name, spec, required)`.
#[derive(Debug, Clone, PartialEq)]
pub struct InputDecl {
    /// Input name.
    pub name: String,
    /// `[type, options]` as declared.
    pub spec: Value,
    /// Declared under `required`.
    pub required: bool,
}

/// Every declared input (`required` then `optional`; `hidden` left out),
/// in `input_order` when the server sends one.
pub fn declared_inputs(class: &Map<String, Value>) -> Vec<InputDecl> {
    let input = class.get("input").and_then(Value::as_object);
    let order = class.get("input_order").and_then(Value::as_object);
    let mut out = Vec::new();
    for (section, required) in [("required", true), ("optional", false)] {
        let Some(decls) = input
            .and_then(|i| i.get(section))
            .and_then(Value::as_object)
        else {
            continue;
        };
        let names: Vec<&str> = match order.and_then(|o| o.get(section)).and_then(Value::as_array) {
            Some(names) => names.iter().filter_map(Value::as_str).collect(),
            None => decls.keys().map(String::as_str).collect(),
        };
        for name in names {
            if let Some(spec) = decls.get(name) {
                out.push(InputDecl {
                    name: name.to_owned(),
                    spec: spec.clone(),
                    required,
                });
            }
        }
    }
    out
}

/// The type of a spec: `"COMBO"` for a list, else the type string.
pub fn spec_type(spec: &Value) -> &str {
    match spec.get(0) {
        Some(Value::Array(_)) => "COMBO",
        Some(Value::String(s)) => s,
        _ => "",
    }
}

/// The widget a spec is drawn as: `options.widgetType` when the input
/// accepts several types (`"FLOAT,INT"` drawn as FLOAT), else its type.
pub fn widget_type(spec: &Value) -> &str {
    spec_options(spec)
        .and_then(|o| o.get("widgetType"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| spec_type(spec))
}

/// The options object of a spec (empty when absent).
pub fn spec_options(spec: &Value) -> Option<&Map<String, Value>> {
    spec.get(1).and_then(Value::as_object)
}

/// The allowed values of a COMBO spec (old `[[...]]` or new
/// `["COMBO", {"options": [...]}]`); `None` when the spec is no combo.
pub fn combo_values(spec: &Value) -> Option<Vec<Value>> {
    match spec.get(0) {
        Some(Value::Array(list)) => Some(list.clone()),
        Some(Value::String(t)) if t == "COMBO" => Some(
            spec_options(spec)
                .and_then(|o| o.get("options"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        ),
        Some(Value::String(t)) if t == DYNAMIC_COMBO => Some(
            dynamic_options(spec)
                .iter()
                .map(|(k, _)| Value::String(k.clone()))
                .collect(),
        ),
        _ => None,
    }
}

/// The options of a dynamic combo as `(key, nested input object)`.
pub fn dynamic_options(spec: &Value) -> Vec<(String, Map<String, Value>)> {
    spec_options(spec)
        .and_then(|o| o.get("options"))
        .and_then(Value::as_array)
        .map(|opts| {
            opts.iter()
                .filter_map(|o| {
                    let key = match o.get("key")? {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    let inputs = o
                        .get("inputs")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    Some((key, inputs))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the frontend draws this input as a widget.
pub fn is_widget(spec: &Value) -> bool {
    let forced = spec_options(spec)
        .and_then(|o| o.get("forceInput"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    !forced && WIDGET_TYPES.contains(&widget_type(spec))
}

fn flag(spec: &Value, key: &str) -> bool {
    spec_options(spec)
        .and_then(|o| o.get(key))
        .is_some_and(|v| !matches!(v, Value::Bool(false) | Value::Null))
}

/// The widgets of a class in `widgets_values` order, as the server's
/// catalogue alone gives them.
pub fn widgets(class: &Map<String, Value>) -> Vec<Widget> {
    widgets_for(class, None)
}

/// The widgets of a class in `widgets_values` order, as `frontend` draws
/// them (`None`: the catalogue's own widget types only).
pub fn widgets_for(class: &Map<String, Value>, frontend: Option<&Frontend>) -> Vec<Widget> {
    let mut decls = declared_inputs(class);
    if let (Some(fe), Some(name)) = (frontend, class.get("name").and_then(Value::as_str)) {
        // Inputs the frontend adds are not in `input_order`, so they come
        // after every ordered one; without an order, after the required.
        let at = if class.get("input_order").is_some() {
            decls.len()
        } else {
            decls.iter().take_while(|d| d.required).count()
        };
        let added: Vec<InputDecl> = fe
            .added_inputs(name)
            .into_iter()
            .filter(|(n, _)| !decls.iter().any(|d| d.name == *n))
            .map(|(n, t)| InputDecl {
                name: n.to_owned(),
                spec: Value::Array(vec![Value::String(t.to_owned()), Value::Object(Map::new())]),
                required: true,
            })
            .collect();
        decls.splice(at..at, added);
    }
    let mut out = Vec::new();
    for decl in decls {
        push_widget(&mut out, &decl.name, &decl.spec, frontend);
    }
    out
}

fn push_widget(out: &mut Vec<Widget>, name: &str, spec: &Value, frontend: Option<&Frontend>) {
    if !is_widget(spec) {
        let forced = spec_options(spec)
            .and_then(|o| o.get("forceInput"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let Some(rule) = frontend
            .filter(|_| !forced)
            .and_then(|fe| fe.widget_rule(widget_type(spec)))
        else {
            return;
        };
        let has_model_file = out
            .iter()
            .any(|w| matches!(w, Widget::Input { name, .. } if name == "model_file"));
        if has_model_file {
            for (button, value) in rule.buttons_before {
                out.push(Widget::Input {
                    name: (*button).to_owned(),
                    spec: Value::Array(vec![Value::String("BUTTON".to_owned())]),
                    saved: true,
                    sent: Sent::Value,
                    default: Some(Value::String((*value).to_owned())),
                });
            }
        }
        out.push(Widget::Input {
            name: name.to_owned(),
            spec: spec.clone(),
            saved: rule.saved,
            sent: rule.sent,
            default: Some(rule.default.value()),
        });
        for _ in 0..rule.trailing_slots {
            out.push(Widget::FrontendOnly("sub-widget"));
        }
        return;
    }
    out.push(Widget::Input {
        name: name.to_owned(),
        spec: spec.clone(),
        saved: true,
        sent: Sent::Value,
        default: None,
    });
    match widget_type(spec) {
        "INT" if flag(spec, "control_after_generate") || matches!(name, "seed" | "noise_seed") => {
            out.push(Widget::FrontendOnly("control_after_generate"));
        }
        "COMBO" => {
            if flag(spec, "control_after_generate") {
                out.push(Widget::FrontendOnly("control_after_generate"));
                out.push(Widget::FrontendOnly("control_filter_list"));
            }
            if UPLOAD_FLAGS.iter().any(|f| flag(spec, f)) {
                out.push(Widget::FrontendOnly("upload"));
            }
        }
        _ => {}
    }
}

/// The value a widget starts with when the saved workflow has none.
pub fn default_value(spec: &Value) -> Value {
    let opts = spec_options(spec);
    if let Some(d) = opts.and_then(|o| o.get("default")) {
        return d.clone();
    }
    match widget_type(spec) {
        "INT" | "FLOAT" => opts
            .and_then(|o| o.get("min"))
            .cloned()
            .unwrap_or(Value::from(0)),
        "STRING" => Value::String(String::new()),
        "BOOLEAN" => Value::Bool(false),
        _ => combo_values(spec)
            .and_then(|v| v.into_iter().next())
            .unwrap_or(Value::Null),
    }
}

/// A node's serialised widget inputs as `(name, value)`, in widget order:
/// positional `widgets_values` (or keyed by name when it is an object),
/// frontend-only widgets skipped, defaults for values the save lacks, the
/// chosen option's nested inputs after a dynamic combo (`codec.crf`), and
/// arrays wrapped as `{"__value__": [...]}` as the frontend sends them.
pub fn widget_inputs(class: &Map<String, Value>, saved: Option<&Value>) -> Vec<(String, Value)> {
    widget_inputs_for(class, saved, None)
}

/// [`widget_inputs`] as `frontend` draws and sends the node's widgets.
pub fn widget_inputs_for(
    class: &Map<String, Value>,
    saved: Option<&Value>,
    frontend: Option<&Frontend>,
) -> Vec<(String, Value)> {
    let list = widgets_for(class, frontend);
    let mut out = Vec::new();
    let mut pos = 0usize;
    collect(&list, saved, &mut pos, "", frontend, &mut out);
    let custom_combo = class.get("name").and_then(Value::as_str) == Some("CustomCombo");
    if custom_combo && frontend.is_some_and(|fe| fe.has(Rule::CustomComboOptions)) {
        // One string widget `option<N>` per saved value after `choice`.
        if let Some(Value::Array(values)) = saved {
            for (n, v) in values.iter().skip(pos).enumerate() {
                out.push((format!("option{n}"), wrap_array(v.clone())));
            }
        }
    }
    out
}

fn saved_value(saved: Option<&Value>, pos: usize, name: &str) -> Option<Value> {
    match saved {
        Some(Value::Array(a)) => a.get(pos).cloned(),
        Some(Value::Object(o)) => o.get(name).cloned(),
        _ => None,
    }
}

fn collect(
    list: &[Widget],
    saved: Option<&Value>,
    pos: &mut usize,
    prefix: &str,
    frontend: Option<&Frontend>,
    out: &mut Vec<(String, Value)>,
) {
    for w in list {
        let here = *pos;
        let (name, spec, in_save, sent, default) = match w {
            Widget::FrontendOnly(_) => {
                *pos += 1;
                continue;
            }
            Widget::Input {
                name,
                spec,
                saved,
                sent,
                default,
            } => (name, spec, *saved, *sent, default),
        };
        if in_save {
            *pos += 1;
        }
        let full = format!("{prefix}{name}");
        let value = in_save
            .then(|| saved_value(saved, here, &full))
            .flatten()
            .or_else(|| spec_options(spec).and_then(|o| o.get("default")).cloned())
            .or_else(|| default.clone())
            .unwrap_or_else(|| default_value(spec));
        let chosen = value.clone();
        match sent {
            Sent::Nothing => {}
            Sent::Value => out.push((full.clone(), wrap_array(value))),
            Sent::CurveValue => {
                let mut m = Map::new();
                m.insert("__type__".to_owned(), Value::String("CURVE".to_owned()));
                m.insert("__value__".to_owned(), value);
                out.push((full.clone(), Value::Object(m)));
            }
            Sent::Fixed(f) => out.push((full.clone(), wrap_array(f.value()))),
            Sent::InputAudioUrl => {
                let file = out
                    .iter()
                    .find(|(n, _)| n == "audio")
                    .and_then(|(_, v)| v.as_str().map(str::to_owned));
                let url = match file {
                    Some(f) if has_audio_upload(list) => input_view_url(&f),
                    _ => String::new(),
                };
                out.push((full.clone(), Value::String(url)));
            }
        }
        if spec_type(spec) == DYNAMIC_COMBO {
            let key = match &chosen {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if let Some((_, nested)) = dynamic_options(spec).into_iter().find(|(k, _)| *k == key) {
                // The option's inputs are named `${combo}.${key}` before
                // their widgets are made, so a nested `seed` is no seed to
                // the frontend (no control_after_generate after it).
                let prefixed: Map<String, Value> = nested
                    .into_iter()
                    .map(|(section, decls)| {
                        let decls = match decls {
                            Value::Object(d) => Value::Object(
                                d.into_iter()
                                    .map(|(k, v)| (format!("{full}.{k}"), v))
                                    .collect(),
                            ),
                            other => other,
                        };
                        (section, decls)
                    })
                    .collect();
                let mut inner = Map::new();
                inner.insert("input".to_owned(), Value::Object(prefixed));
                let nested_widgets = widgets_for(&inner, frontend);
                collect(&nested_widgets, saved, pos, "", frontend, out);
            }
        }
    }
}

/// Whether the node's widgets include an audio upload combo (the widget
/// whose value the player shows).
fn has_audio_upload(list: &[Widget]) -> bool {
    list.iter().any(|w| {
        matches!(w, Widget::Input { name, spec, .. } if name == "audio" && flag(spec, "audio_upload"))
    })
}

/// What `encodeURIComponent` leaves as it is: letters, digits and
/// `-_.!~*'()`.
const URI_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// `/api/view?filename=…&type=input&subfolder=…&rand=0` for an input file
/// `sub/dir/name.wav`, as the frontend's `getResourceURL` builds it (the
/// file name encoded, the folder not; its random `rand` written as 0).
pub fn input_view_url(path: &str) -> String {
    let (folder, name) = path.rsplit_once('/').unwrap_or(("", path));
    let name = percent_encoding::utf8_percent_encode(name, URI_COMPONENT);
    format!("/api/view?filename={name}&type=input&subfolder={folder}&rand=0")
}

/// An array widget value as the frontend sends it: `{"__value__": [...]}`
/// (a bare list would read as a link).
pub fn wrap_array(value: Value) -> Value {
    match value {
        Value::Array(a) => {
            let mut m = Map::new();
            m.insert("__value__".to_owned(), Value::Array(a));
            Value::Object(m)
        }
        v => v,
    }
}
