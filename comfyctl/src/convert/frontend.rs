//! The frontend a prompt is built for, and every way frontend versions
//! differ in what they write into it: one table, [`RULES`], each row a rule
//! with the versions it holds for and where in the frontend's source it
//! comes from.
//!
//! What `graphToPrompt` (`src/utils/executionUtil.ts`) writes depends on two
//! widget flags: `widget.serialize === false` keeps a widget out of the
//! saved `widgets_values` (so it takes no position there), and
//! `widget.options.serialize === false` keeps it out of the prompt. Every
//! other widget with a name is sent under that name, with its value, even
//! when the server's catalogue has no such input. Which widgets a node has,
//! and which of the two flags they set, changes between frontend versions.
//!
//! Versions between recorded ones behave as the newest recorded one before
//! them: a bound in the table is the first recorded frontend that shows
//! (or no longer shows) a rule, like the release table's bounds.

use super::locale::LOCALE_TITLES;
use comfy_adapter::releases;
use semver::Version;
use serde_json::{Map, Value};
use std::fmt;

/// A `comfyui-frontend-package` version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Frontend {
    version: Version,
}

/// Why a frontend version was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    /// Not `MAJOR.MINOR.PATCH`.
    #[error("{0:?} is not a frontend version like 1.37.11")]
    NotAVersion(String),
}

/// `(major, minor, patch)`.
pub type Triple = (u64, u64, u64);

/// One rule and the frontend versions it holds for: `since <= v < until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// First frontend it holds for (`None`: every earlier one too).
    pub since: Option<Triple>,
    /// First frontend it no longer holds for (`None`: still holds).
    pub until: Option<Triple>,
    /// What the frontend does.
    pub rule: Rule,
    /// Where it was read: the frontend's file(s) and the versions compared,
    /// or the recording that shows it.
    pub source: &'static str,
}

/// A way a frontend shapes the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Subgraph interior node ids that clash with another node's are
    /// renumbered on load (`92:94` becomes `92:98`).
    RenumberSubgraphIds,
    /// The frontend gives these classes an input the server does not
    /// declare, drawn as a widget of `widget_type` (see [`Rule::Widget`]).
    /// It comes after every declared input (`input_order` does not name
    /// it).
    AddsInput {
        /// Node classes.
        classes: &'static [&'static str],
        /// Input (and widget) name.
        name: &'static str,
        /// Its widget type.
        widget_type: &'static str,
    },
    /// Inputs of this type are drawn as a widget, saved and sent as said.
    Widget(WidgetRule),
    /// `CustomCombo` adds a string widget `option<N>` per option after its
    /// `choice`; each is saved and sent.
    CustomComboOptions,
    /// Where an untitled node's `_meta.title` comes from.
    Titles(TitleOrder),
    /// An instance's `proxyWidgets` entry naming an interior widget
    /// (`["123", "noise_seed"]`, not a `-1` boundary input) is migrated to a
    /// promoted input on load, and the instance's `widgets_values` at that
    /// entry's position becomes the interior widget's value (a `null` there
    /// is a hole unless [`Rule::NullInstanceValuesApply`]).
    PromotedWidgetsTakeInstanceValues,
    /// A `null` in the instance's `widgets_values` is a value too.
    NullInstanceValuesApply,
    /// `_meta` also carries the node pack a node comes from, copied from the
    /// node's `properties` when valid: `cnr_id`, `aux_id`, `ver`.
    PackMetadataInMeta,
    /// `POST /prompt` carries `extra_data.comfy_usage_source:
    /// "comfyui-frontend"`.
    UsageSourceInBody,
}

/// How a widget type is saved and sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WidgetRule {
    /// The input (or widget) type.
    pub widget_type: &'static str,
    /// It takes a position in `widgets_values` (`widget.serialize` is not
    /// `false`).
    pub saved: bool,
    /// What goes into the prompt.
    pub sent: Sent,
    /// Frontend-only widgets that follow it, each taking a position in
    /// `widgets_values` and never sent (a bounding box's `x`, `y`, `width`,
    /// `height` number fields).
    pub trailing_slots: u8,
    /// Its value when the save has none and the input declares no default.
    pub default: Fixed,
    /// Buttons drawn before it when the node has a `model_file` widget,
    /// as `(name, value)`: saved and sent like any widget (buttons set
    /// neither serialize flag).
    pub buttons_before: &'static [(&'static str, &'static str)],
}

/// What a widget puts into the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Its value: the saved one, or its default.
    Value,
    /// Its value wrapped as `{"__type__": "CURVE", "__value__": v}`.
    CurveValue,
    /// The player's source: for a node whose `audio` widget names an input
    /// file, `/api/view?filename=…&type=input&subfolder=…&rand=…` (the
    /// frontend's random cache-buster is written as `0`); `""` otherwise.
    InputAudioUrl,
    /// Always this value (the widget's value is never saved or set).
    Fixed(Fixed),
    /// Nothing (`options.serialize === false`).
    Nothing,
}

/// A constant widget value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixed {
    /// `""` (a DOM widget without a value).
    EmptyString,
    /// `["", ""]` (the image-compare widget's initial value), sent wrapped
    /// as `{"__value__": ["", ""]}`.
    TwoEmptyStrings,
    /// `[]`.
    EmptyList,
    /// `{"x": 0, "y": 0, "width": 512, "height": 512}` (a bounding box's
    /// initial value).
    Box512,
}

impl Fixed {
    /// The value as JSON (before array wrapping).
    pub fn value(self) -> Value {
        match self {
            Fixed::EmptyString => Value::String(String::new()),
            Fixed::TwoEmptyStrings => Value::Array(vec![
                Value::String(String::new()),
                Value::String(String::new()),
            ]),
            Fixed::EmptyList => Value::Array(Vec::new()),
            Fixed::Box512 => serde_json::json!({"x": 0, "y": 0, "width": 512, "height": 512}),
        }
    }
}

/// Which name an untitled node gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TitleOrder {
    /// The frontend's bundled English locale first, then the server's
    /// `display_name`, then the class.
    LocaleFirst,
    /// The server's `display_name` first, then the bundled locale, then the
    /// class.
    ServerFirst,
}

const fn value_widget(widget_type: &'static str) -> Rule {
    Rule::Widget(WidgetRule {
        widget_type,
        saved: true,
        sent: Sent::Value,
        trailing_slots: 0,
        default: Fixed::EmptyString,
        buttons_before: &[],
    })
}

const fn list_widget(widget_type: &'static str) -> Rule {
    Rule::Widget(WidgetRule {
        widget_type,
        saved: true,
        sent: Sent::Value,
        trailing_slots: 0,
        default: Fixed::EmptyList,
        buttons_before: &[],
    })
}

/// The audio classes that get an `audioUI` player widget.
const AUDIO_PLAYERS: &[&str] = &[
    "LoadAudio",
    "SaveAudio",
    "PreviewAudio",
    "SaveAudioMP3",
    "SaveAudioOpus",
];

/// Every rule, each with the frontends it holds for.
pub const RULES: &[Row] = &[
    Row {
        since: Some((1, 40, 0)),
        until: None,
        rule: Rule::RenumberSubgraphIds,
        source: "src/lib/litegraph/src/subgraph/subgraphDeduplication.ts (absent in 1.37.11, present in 1.45.19; frontend PR #8762, hardened in #9510 and backported to core/1.40 as #9578, behind the setting Comfy.Graph.DeduplicateSubgraphNodeIds, on by default in 1.45.19 and later); ground truth: 1.37.11 keeps 92:94 in video_ltx2_t2v, 1.45.19 and 1.48.7 renumber it",
    },
    Row {
        since: None,
        until: None,
        rule: Rule::AddsInput {
            classes: AUDIO_PLAYERS,
            name: "audioUI",
            widget_type: "AUDIO_UI",
        },
        source: "src/extensions/core/uploadAudio.ts (Comfy.AudioWidget beforeRegisterNodeDef), 1.36.14–1.58.1",
    },
    Row {
        since: Some((1, 45, 19)),
        until: None,
        rule: Rule::AddsInput {
            classes: &["SaveAudioAdvanced"],
            name: "audioUI",
            widget_type: "AUDIO_UI",
        },
        source: "src/extensions/core/uploadAudio.ts: SaveAudioAdvanced joins the list (absent in 1.37.11, present in 1.45.19)",
    },
    Row {
        since: None,
        until: Some((1, 45, 19)),
        rule: Rule::Widget(WidgetRule {
            widget_type: "AUDIO_UI",
            saved: false,
            sent: Sent::Fixed(Fixed::EmptyString),
            trailing_slots: 0,
            default: Fixed::EmptyString,
            buttons_before: &[],
        }),
        source: "src/extensions/core/uploadAudio.ts 1.37.11: the player sets only widget.serialize = false, so it is sent as \"\"",
    },
    Row {
        since: Some((1, 45, 19)),
        until: Some((1, 48, 7)),
        rule: Rule::Widget(WidgetRule {
            widget_type: "AUDIO_UI",
            saved: false,
            sent: Sent::InputAudioUrl,
            trailing_slots: 0,
            default: Fixed::EmptyString,
            buttons_before: &[],
        }),
        source: "src/extensions/core/uploadAudio.ts 1.45.19: the upload widget sets the player's value to api.apiURL(getResourceURL(...splitFilePath(audio))) (audioUtils.ts), with app.getRandParam()'s random rand; only widget.serialize = false, so it is sent",
    },
    Row {
        since: Some((1, 48, 7)),
        until: None,
        rule: Rule::Widget(WidgetRule {
            widget_type: "AUDIO_UI",
            saved: false,
            sent: Sent::Nothing,
            trailing_slots: 0,
            default: Fixed::EmptyString,
            buttons_before: &[],
        }),
        source: "src/extensions/core/uploadAudio.ts 1.48.7, 1.58.1: also options.serialize = false",
    },
    Row {
        since: None,
        until: None,
        rule: Rule::AddsInput {
            classes: &["Preview3D"],
            name: "image",
            widget_type: "PREVIEW_3D",
        },
        source: "src/extensions/core/load3d.ts (Preview3D): required.image = ['PREVIEW_3D'], 1.27.10–1.58.1",
    },
    Row {
        since: Some((1, 34, 9)),
        until: None,
        rule: Rule::AddsInput {
            classes: &["SaveGLB"],
            name: "image",
            widget_type: "PREVIEW_3D",
        },
        source: "src/extensions/core/saveMesh.ts (absent in 1.27.10, present in 1.34.9–1.58.1): required.image = ['PREVIEW_3D']",
    },
    Row {
        since: None,
        until: Some((1, 34, 9)),
        rule: Rule::AddsInput {
            classes: &["Preview3DAnimation"],
            name: "image",
            widget_type: "PREVIEW_3D_ANIMATION",
        },
        source: "src/extensions/core/load3d.ts 1.27.10 (Comfy.Preview3DAnimation): required.image = ['PREVIEW_3D_ANIMATION']; the class is gone from 0.6.0's catalogue",
    },
    Row {
        since: None,
        until: Some((1, 34, 9)),
        rule: value_widget("PREVIEW_3D_ANIMATION"),
        source: "src/extensions/core/load3d.ts 1.27.10: a component widget like PREVIEW_3D",
    },
    Row {
        since: None,
        until: Some((1, 34, 9)),
        rule: Rule::Widget(WidgetRule {
            widget_type: "LOAD_3D_ANIMATION",
            saved: true,
            sent: Sent::Value,
            trailing_slots: 0,
            default: Fixed::EmptyString,
            buttons_before: &[
                ("upload 3d model", "upload3dmodel"),
                ("upload extra resources", "uploadExtraResources"),
                ("clear", "clear"),
            ],
        }),
        source: "src/extensions/core/load3d.ts 1.27.10 (LOAD_3D_ANIMATION, Load3DAnimation's image): the same buttons and scene as LOAD_3D",
    },
    Row {
        since: None,
        until: None,
        rule: value_widget("PREVIEW_3D"),
        source: "load3d.ts / saveMesh.ts: a component widget with options {} (saved, sent; its value is \"\")",
    },
    Row {
        since: None,
        until: None,
        rule: Rule::Widget(WidgetRule {
            widget_type: "LOAD_3D",
            saved: true,
            sent: Sent::Value,
            trailing_slots: 0,
            default: Fixed::EmptyString,
            buttons_before: &[
                ("upload 3d model", "upload3dmodel"),
                ("upload extra resources", "uploadExtraResources"),
                ("clear", "clear"),
            ],
        }),
        source: "src/extensions/core/load3d.ts (LOAD_3D) 1.37.11–1.58.1: three buttons, then the scene widget; the real frontend replaces the scene's value at queue time with the render it uploads, which no converter can do (from the source only, no recording shows it)",
    },
    Row {
        since: None,
        until: Some((1, 45, 19)),
        rule: Rule::Widget(WidgetRule {
            widget_type: "IMAGECOMPARE",
            saved: true,
            sent: Sent::Value,
            trailing_slots: 0,
            default: Fixed::TwoEmptyStrings,
            buttons_before: &[],
        }),
        source: "useImageCompareWidget.ts 1.37.11: addWidget('imagecompare', name, ['', ''], …, {serialize: true})",
    },
    Row {
        since: Some((1, 45, 19)),
        until: None,
        rule: Rule::Widget(WidgetRule {
            widget_type: "IMAGECOMPARE",
            saved: false,
            sent: Sent::Fixed(Fixed::TwoEmptyStrings),
            trailing_slots: 0,
            default: Fixed::TwoEmptyStrings,
            buttons_before: &[],
        }),
        source: "useImageCompareWidget.ts 1.45.19–1.58.1: widget.serialize = false (not saved), still sent",
    },
    Row {
        since: None,
        until: None,
        rule: value_widget("WEBCAM"),
        source: "src/extensions/core/webcamCapture.ts 1.37.11–1.58.1: a DOM widget named after the input, saved and sent; the real frontend sends the capture it uploads at queue time (no converter can), and its trailing capture button is never sent",
    },
    Row {
        since: None,
        until: Some((1, 45, 19)),
        rule: Rule::AddsInput {
            classes: &["PreviewAny"],
            name: "preview",
            widget_type: "PREVIEW_TEXT",
        },
        source: "src/extensions/core/previewAny.ts 1.37.11: two `preview` text widgets (MARKDOWN and STRING) with widget.serialize = false, sent as \"\"",
    },
    Row {
        since: Some((1, 34, 9)),
        until: Some((1, 45, 19)),
        rule: Rule::AddsInput {
            classes: &["PreviewAny"],
            name: "previewMode",
            widget_type: "BOOLEAN",
        },
        source: "src/extensions/core/previewAny.ts 1.34.9, 1.37.11 (absent in 1.27.10, which has one `preview` STRING): a `previewMode` BOOLEAN (default false), saved and sent; 1.45.19 sets options.serialize = false on all three (not sent), 1.48.7 moves them to textPreviewWidgets.ts",
    },
    Row {
        since: None,
        until: Some((1, 45, 19)),
        rule: Rule::Widget(WidgetRule {
            widget_type: "PREVIEW_TEXT",
            saved: false,
            sent: Sent::Fixed(Fixed::EmptyString),
            trailing_slots: 0,
            default: Fixed::EmptyString,
            buttons_before: &[],
        }),
        source: "src/extensions/core/previewAny.ts 1.37.11 (see above)",
    },
    Row {
        since: None,
        until: None,
        rule: value_widget("COLOR"),
        source: "src/scripts/widgets.ts ComfyWidgets.COLOR, useColorWidget.ts ({serialize: true}), 1.36.14–1.58.1",
    },
    Row {
        since: Some((1, 45, 19)),
        until: None,
        rule: Rule::Widget(WidgetRule {
            widget_type: "BOUNDING_BOX",
            saved: true,
            sent: Sent::Value,
            trailing_slots: 4,
            default: Fixed::Box512,
            buttons_before: &[],
        }),
        source: "useBoundingBoxWidget.ts 1.45.19–1.58.1: the box, then number widgets x, y, width, height with options.serialize false (saved, not sent)",
    },
    Row {
        since: Some((1, 48, 7)),
        until: None,
        rule: list_widget("BOUNDING_BOXES"),
        source: "useBoundingBoxesWidget.ts 1.48.7, 1.58.1",
    },
    Row {
        since: Some((1, 48, 7)),
        until: None,
        rule: list_widget("COLORS"),
        source: "useColorsWidget.ts 1.48.7, 1.58.1",
    },
    Row {
        since: Some((1, 48, 7)),
        until: None,
        rule: value_widget("COMPOSITOR"),
        source: "useCompositorWidget.ts 1.48.7, 1.58.1",
    },
    Row {
        since: Some((1, 45, 19)),
        until: None,
        rule: value_widget("PAINTER"),
        source: "usePainterWidget.ts 1.45.19–1.58.1 (ComfyWidgets.PAINTER)",
    },
    Row {
        since: Some((1, 45, 19)),
        until: None,
        rule: value_widget("RANGE"),
        source: "useRangeWidget.ts 1.45.19–1.58.1 (ComfyWidgets.RANGE)",
    },
    Row {
        since: Some((1, 45, 19)),
        until: None,
        rule: Rule::Widget(WidgetRule {
            widget_type: "CURVE",
            saved: true,
            sent: Sent::CurveValue,
            trailing_slots: 0,
            default: Fixed::EmptyString,
            buttons_before: &[],
        }),
        source: "src/utils/executionUtil.ts 1.45.19–1.58.1: widget.type === 'curve' is sent as {__type__: 'CURVE', __value__} (ComfyWidgets.CURVE from 1.45.19)",
    },
    Row {
        since: Some((1, 36, 14)),
        until: None,
        rule: Rule::CustomComboOptions,
        source: "src/extensions/core/customCombo.ts (absent in 1.34.9; 1.36.14, 1.37.11), customWidgets.ts (1.45.19–1.58.1): addWidget('string', `option${n}`, '')",
    },
    Row {
        since: None,
        until: Some((1, 58, 1)),
        rule: Rule::Titles(TitleOrder::LocaleFirst),
        source: "src/scripts/app.ts getNodeDefs 1.36.14–1.48.7: display_name = st(`nodeDefs.${name}.display_name`, server name)",
    },
    Row {
        since: Some((1, 58, 1)),
        until: None,
        rule: Rule::Titles(TitleOrder::ServerFirst),
        source: "src/i18n.ts resolveNodeDefText 1.58.1: in English the live backend value wins over the bundled snapshot",
    },
    Row {
        since: Some((1, 48, 7)),
        until: None,
        rule: Rule::PromotedWidgetsTakeInstanceValues,
        source: "src/core/graph/subgraph/migration/proxyWidgetMigration.ts 1.48.7, 1.58.1 (pickHostValue, applyHostValueToInput); 1.37.11's proxyWidget.ts applies only `-1` entries",
    },
    Row {
        since: Some((1, 58, 1)),
        until: None,
        rule: Rule::NullInstanceValuesApply,
        source: "src/lib/litegraph/src/types/widgets.ts isWidgetValue: null is no widget value in 1.48.7, is one in 1.58.1 (video_ltx2_t2v_distilled 177:123 noise_seed: 45 with 1.48.7, null with 1.58.1)",
    },
    Row {
        since: Some((1, 58, 1)),
        until: None,
        rule: Rule::PackMetadataInMeta,
        source: "src/utils/executionUtil.ts 1.58.1 (zNodePackMetadata of workflowSchema.ts); absent in 1.48.7",
    },
    Row {
        since: Some((1, 48, 7)),
        until: None,
        rule: Rule::UsageSourceInBody,
        source: "src/scripts/api.ts 1.48.7 queuePrompt; recorded sessions: absent with 1.36.14/1.37.11, present with 1.48.7/1.58.1",
    },
];

impl Row {
    /// Whether the row holds for `v` (pre-release tags are ignored): the
    /// same half-open ranges as the releases table's.
    pub fn holds_for(&self, v: &Version) -> bool {
        releases::Range {
            since: self.since,
            until: self.until,
        }
        .contains(v)
    }
}

impl Frontend {
    /// A frontend of this version.
    pub fn new(version: Version) -> Self {
        Frontend { version }
    }

    /// Parses `1.37.11` (a leading `v` is allowed).
    pub fn parse(s: &str) -> Result<Self, FrontendError> {
        let t = s.trim();
        let t = t.strip_prefix('v').unwrap_or(t);
        Version::parse(t)
            .map(Frontend::new)
            .map_err(|_| FrontendError::NotAVersion(s.to_owned()))
    }

    /// The frontend a ComfyUI release pins (the releases table; a release
    /// between recorded ones pins what the one before it pins).
    pub fn pinned_by(server: &Version) -> Self {
        let pinned = releases::frontend_for(server);
        // The table's entries are valid versions (a test checks it).
        Frontend::parse(pinned).unwrap_or(Frontend::new(Version::new(0, 0, 0)))
    }

    /// The version.
    pub fn version(&self) -> &Version {
        &self.version
    }

    /// The rules that hold for this frontend, in table order.
    pub fn rules(&self) -> impl Iterator<Item = &'static Rule> + '_ {
        RULES
            .iter()
            .filter(|r| r.holds_for(&self.version))
            .map(|r| &r.rule)
    }

    /// Whether a rule without data holds (`RenumberSubgraphIds`, ...).
    pub fn has(&self, rule: Rule) -> bool {
        self.rules().any(|r| *r == rule)
    }

    /// How this frontend draws inputs of `widget_type`, when it is one of
    /// the frontend's own widget types.
    pub fn widget_rule(&self, widget_type: &str) -> Option<WidgetRule> {
        self.rules().find_map(|r| match r {
            Rule::Widget(w) if w.widget_type == widget_type => Some(*w),
            _ => None,
        })
    }

    /// Inputs this frontend adds to `class`: `(name, widget type)`.
    pub fn added_inputs(&self, class: &str) -> Vec<(&'static str, &'static str)> {
        self.rules()
            .filter_map(|r| match r {
                Rule::AddsInput {
                    classes,
                    name,
                    widget_type,
                } if classes.contains(&class) => Some((*name, *widget_type)),
                _ => None,
            })
            .collect()
    }

    /// Where titles come from.
    pub fn title_order(&self) -> TitleOrder {
        self.rules()
            .find_map(|r| match r {
                Rule::Titles(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(TitleOrder::ServerFirst)
    }

    /// The display name this frontend's bundled English locale gives
    /// `class`, where it differs from a recorded release's (the snapshot of
    /// the newest recorded frontend not newer than this one).
    pub fn locale_title(&self, class: &str) -> Option<&'static str> {
        let key = (self.version.major, self.version.minor, self.version.patch);
        let snapshot = LOCALE_TITLES
            .iter()
            .rev()
            .find(|(v, _)| Version::parse(v).is_ok_and(|v| (v.major, v.minor, v.patch) <= key))
            .or(LOCALE_TITLES.first())?;
        snapshot
            .1
            .binary_search_by(|(c, _)| (*c).cmp(class))
            .ok()
            .map(|i| snapshot.1[i].1)
    }

    /// The `_meta.title` of an untitled node of `class` whose server
    /// `display_name` is `server` (`None`: not sent).
    pub fn title(&self, class: &str, server: Option<&str>) -> String {
        // Every version titles a node `display_name || name`: an empty
        // name counts as none (litegraphService.ts).
        let server = server.filter(|s| !s.is_empty());
        let locale = self.locale_title(class);
        let first = match self.title_order() {
            TitleOrder::LocaleFirst => locale.or(server),
            TitleOrder::ServerFirst => server.or(locale),
        };
        first.unwrap_or(class).to_owned()
    }

    /// The `extra_data` of a `POST /prompt` body, the workflow aside.
    pub fn extra_data(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if self.has(Rule::UsageSourceInBody) {
            m.insert(
                "comfy_usage_source".to_owned(),
                Value::String("comfyui-frontend".to_owned()),
            );
        }
        m
    }
}

/// The node-pack fields 1.58.1 copies into `_meta`, in its order, each
/// only when `workflowSchema.ts` would accept it: `cnr_id` a registry id,
/// `aux_id` a `github-user/repo`, `ver` a semantic version or a git hash
/// (a leading `v` dropped) or `unknown`.
pub fn pack_metadata(properties: &Map<String, Value>) -> Vec<(&'static str, String)> {
    let text = |k: &str| properties.get(k).and_then(Value::as_str);
    let mut out = Vec::new();
    if let Some(id) = text("cnr_id").filter(|s| is_repo_like_id(s)) {
        out.push(("cnr_id", id.to_owned()));
    }
    if let Some(id) = text("aux_id").filter(|s| is_aux_id(s)) {
        out.push(("aux_id", id.to_owned()));
    }
    if let Some(v) = text("ver") {
        let stripped = v.strip_prefix('v').unwrap_or(v);
        if is_strict_semver(stripped) || is_git_hash(stripped) {
            out.push(("ver", stripped.to_owned()));
        } else if v == "unknown" {
            out.push(("ver", v.to_owned()));
        }
    }
    out
}

/// 1–100 of `[A-Za-z0-9._-]`, starting and ending with a letter or digit.
fn is_repo_like_id(s: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    (1..=100).contains(&s.len())
        && s.chars().all(ok_char)
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// `user/repo`: a GitHub user (1–39 of `[A-Za-z0-9-]`, no leading,
/// trailing or double `-`) and a repo-like id.
fn is_aux_id(s: &str) -> bool {
    let Some((user, repo)) = s.split_once('/') else {
        return false;
    };
    let user_ok = (1..=39).contains(&user.len())
        && user.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !user.starts_with('-')
        && !user.ends_with('-')
        && !user.contains("--");
    user_ok && !repo.contains('/') && is_repo_like_id(repo)
}

/// 4–40 hex digits.
fn is_git_hash(s: &str) -> bool {
    (4..=40).contains(&s.len()) && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// `MAJOR.MINOR.PATCH` without leading zeros, then an optional `-pre` and
/// `+build` of dot-separated `[0-9a-z-]` parts (lower case, as the
/// frontend's pattern has it).
fn is_strict_semver(s: &str) -> bool {
    let (rest, build) = match s.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (s, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let number = |p: &str| {
        !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && (p == "0" || !p.starts_with('0'))
    };
    let parts = |x: &str| {
        x.split('.').all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase() || c == '-')
        })
    };
    let core: Vec<&str> = core.split('.').collect();
    core.len() == 3
        && core.iter().all(|p| number(p))
        && pre.is_none_or(parts)
        && build.is_none_or(parts)
}

impl fmt::Display for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.version, f)
    }
}

impl std::str::FromStr for Frontend {
    type Err = FrontendError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Frontend::parse(s)
    }
}
