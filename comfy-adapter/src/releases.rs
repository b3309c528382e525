//! The one table of ComfyUI releases: which are recorded and tested, which
//! behaviour line each belongs to, which frontend each pins, and every
//! detail in which releases differ. Detection, the emulator, the worker's
//! registration, the upgrade tools and the tests read this table; nothing
//! else in the workspace names a release.
//!
//! Behaviour is looked up by version *range*, never by string equality: a
//! release that is not in the table (a 0.34.0, say) behaves as the newest
//! recorded release before it, and lands on the line whose range holds it.
//! `docs/adding-a-release.md` says how to add a row.

use semver::Version;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A behaviour line: a range of ComfyUI releases that speak the same API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Line {
    /// 0.3 – 0.5: no `/api/jobs`; status comes from `/queue` + `/history`.
    Legacy,
    /// 0.6 – 0.25: `/api/jobs` list and by-id; no cancel endpoint.
    JobsApi,
    /// 0.26 and later: `/api/jobs/{id}/cancel`, canonical-UUID prompt ids,
    /// `missing_node_type` errors.
    CancelApi,
}

impl Line {
    /// Every line, oldest first.
    pub const ALL: [Line; 3] = [Line::Legacy, Line::JobsApi, Line::CancelApi];

    /// The line's name, the same everywhere it is written: `detect --json`,
    /// the worker's registration, the queue's routing and the docs.
    pub fn name(self) -> &'static str {
        match self {
            Line::Legacy => "legacy",
            Line::JobsApi => "jobs-api",
            Line::CancelApi => "cancel-api",
        }
    }

    /// The line with this [`name`](Line::name).
    pub fn from_name(name: &str) -> Option<Line> {
        Line::ALL.into_iter().find(|l| l.name() == name)
    }

    /// The release range this line covers (`0.6-0.25`, `0.26+`), from
    /// [`LINE_STARTS`].
    pub fn range(self) -> String {
        let starts = LINE_STARTS;
        let Some(i) = starts.iter().position(|(l, _)| *l == self) else {
            return String::new();
        };
        let (major, minor) = starts[i].1;
        match starts.get(i + 1) {
            Some((_, (nmaj, nmin))) if *nmin > 0 => {
                format!("{major}.{minor}-{nmaj}.{}", nmin - 1)
            }
            Some((_, (nmaj, _))) => format!("{major}.{minor}-{}", nmaj.saturating_sub(1)),
            None => format!("{major}.{minor}+"),
        }
    }

    /// The line a (parsed) version belongs to by number alone: the last
    /// line whose start ([`LINE_STARTS`]) it has reached.
    pub fn for_version(v: &semver::Version) -> Line {
        let key = (v.major, v.minor);
        LINE_STARTS
            .iter()
            .rev()
            .find(|(_, start)| key >= *start)
            .map_or(Line::Legacy, |(line, _)| *line)
    }

    /// The recorded releases this line is tested against, oldest first
    /// ([`RELEASES`]).
    pub fn tested_versions(self) -> Vec<&'static str> {
        of_line(self).map(|r| r.version).collect()
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.range())
    }
}

/// One recorded and tested ComfyUI release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// The version as `/system_stats` reports it (`0.11.1`).
    pub version: &'static str,
    /// The behaviour line it belongs to (checked against [`Line::for_version`]
    /// by a test).
    pub line: Line,
    /// The `comfyui-frontend-package` version it pins
    /// (`system.required_frontend_version`).
    pub frontend: &'static str,
    /// Release date.
    pub date: &'static str,
    /// The upstream commit the recording was made at.
    pub commit: &'static str,
    /// Where ComfyUI's own Python code sits in the tracebacks this release
    /// writes (the emulator reproduces them line for line).
    pub source_lines: SourceLines,
}

/// Line numbers of ComfyUI's Python source in a release's tracebacks, as
/// recorded (fixtures 033 and 044).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceLines {
    /// `execution.py`: the `validate_inputs` call in `validate_prompt`.
    pub validate_prompt: u32,
    /// `execution.py`: the `prompt[o_id]['class_type']` lookup in
    /// `validate_inputs`.
    pub validate_inputs: u32,
    /// `execution.py` on the way to a node's function: `execute`,
    /// `get_output_data`, `_async_map_node_over_list`, `process_inputs`.
    pub execute: [u32; 4],
    /// `nodes.py`: `SaveImage.save_images`.
    pub save_images: u32,
    /// `folder_paths.py`: `get_save_image_path`.
    pub get_save_image_path: u32,
}

impl Release {
    /// The parsed version.
    pub fn semver(&self) -> Version {
        parse_known(self.version)
    }

    /// The folder of its recordings under `fixtures/`.
    pub fn fixture_dir(&self) -> String {
        format!("comfyui-{}", self.version)
    }

    /// Whether this release shows `difference`.
    pub fn has(&self, difference: Difference) -> bool {
        difference.applies_to(&self.semver())
    }
}

/// Every recorded release, oldest first.
pub const RELEASES: &[Release] = &[
    Release {
        version: "0.3.64",
        line: Line::Legacy,
        frontend: "1.27.10",
        date: "2025-10",
        commit: "a125cd84",
        source_lines: SourceLines {
            validate_prompt: 1010,
            validate_inputs: 788,
            execute: [496, 315, 289, 277],
            save_images: 1590,
            get_save_image_path: 397,
        },
    },
    Release {
        version: "0.6.0",
        line: Line::JobsApi,
        frontend: "1.34.9",
        date: "2025-12-23",
        commit: "e4c61d75",
        source_lines: SourceLines {
            validate_prompt: 1033,
            validate_inputs: 811,
            execute: [516, 330, 304, 292],
            save_images: 1603,
            get_save_image_path: 464,
        },
    },
    Release {
        version: "0.9.2",
        line: Line::JobsApi,
        frontend: "1.36.14",
        date: "2026-01-15",
        commit: "8f40b43e",
        source_lines: SourceLines {
            validate_prompt: 1043,
            validate_inputs: 818,
            execute: [518, 329, 303, 291],
            save_images: 1609,
            get_save_image_path: 464,
        },
    },
    Release {
        version: "0.11.1",
        line: Line::JobsApi,
        frontend: "1.37.11",
        date: "2026-01-29",
        commit: "b0d97089",
        source_lines: SourceLines {
            validate_prompt: 1043,
            validate_inputs: 818,
            execute: [518, 329, 303, 291],
            save_images: 1656,
            get_save_image_path: 464,
        },
    },
    Release {
        version: "0.26.0",
        line: Line::CancelApi,
        frontend: "1.45.19",
        date: "2026-06-23",
        commit: "f6c162dd",
        source_lines: SourceLines {
            validate_prompt: 1172,
            validate_inputs: 921,
            execute: [542, 341, 315, 303],
            save_images: 1655,
            get_save_image_path: 474,
        },
    },
    Release {
        version: "0.33.0",
        line: Line::CancelApi,
        frontend: "1.48.7",
        date: "2026-08-13",
        commit: "2f35f4a0",
        source_lines: SourceLines {
            validate_prompt: 1184,
            validate_inputs: 933,
            execute: [545, 344, 318, 306],
            save_images: 1694,
            get_save_image_path: 557,
        },
    },
];

/// Where each line starts (`major.minor`), oldest first: a version belongs
/// to the last line whose start it has reached. Versions before the first
/// start still read as the first line (detection warns about them).
pub const LINE_STARTS: &[(Line, (u64, u64))] = &[
    (Line::Legacy, (0, 3)),
    (Line::JobsApi, (0, 6)),
    (Line::CancelApi, (0, 26)),
];

/// Every detail in which recorded releases differ on the wire, apart from
/// what the line already says. Each applies to a range of versions
/// ([`Difference::range`]); the fixture named in the docs shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Difference {
    /// The jobs API reports an interrupted prompt as `cancelled` (0.6.0 says
    /// `failed`; fixture 059).
    CancelledStatus,
    /// Queue and history items carry `create_time` (fixture 024).
    CreateTime,
    /// History lists outputs in the order of the prompt's outputs to
    /// execute, not in the order they ran (fixture 083).
    OutputsInRequestOrder,
    /// Userdata `modified`/`created` are integer milliseconds, not float
    /// seconds (fixtures 097, 100).
    UserdataTimesMs,
    /// `GET /userdata/{file}` answers `content-disposition: attachment`.
    UserdataAttachment,
    /// The jobs API counts plain text outputs (`PreviewAny`) in
    /// `outputs_count`.
    TextOutputsCounted,
    /// Jobs carry `previewable_outputs_count` (fixture 027).
    PreviewableOutputsCount,
    /// The "outside the output folder" error ends with a `commonpath` line.
    CommonpathLine,
    /// `SaveAudio` file names end in `_`.
    AudioTrailingUnderscore,
    /// Node execution passes `v3_data` (before: `hidden_inputs`), as the
    /// tracebacks show (fixture 033).
    V3NodeData,
}

/// A half-open range of versions: `since <= v < until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First version in the range (`None`: from the beginning).
    pub since: Option<(u64, u64, u64)>,
    /// First version after the range (`None`: every later release).
    pub until: Option<(u64, u64, u64)>,
}

impl Range {
    /// Whether `v` lies in the range (pre-release tags are ignored).
    pub fn contains(&self, v: &Version) -> bool {
        let v = (v.major, v.minor, v.patch);
        self.since.is_none_or(|s| v >= s) && self.until.is_none_or(|u| v < u)
    }
}

impl Difference {
    /// Every difference.
    pub const ALL: [Difference; 10] = [
        Difference::CancelledStatus,
        Difference::CreateTime,
        Difference::OutputsInRequestOrder,
        Difference::UserdataTimesMs,
        Difference::UserdataAttachment,
        Difference::TextOutputsCounted,
        Difference::PreviewableOutputsCount,
        Difference::CommonpathLine,
        Difference::AudioTrailingUnderscore,
        Difference::V3NodeData,
    ];

    /// The versions that show it. Bounds are the first recorded release
    /// that shows (or no longer shows) it, or a release boundary the
    /// project knows from upstream (0.9 for `cancelled`).
    pub const fn range(self) -> Range {
        const fn from(v: (u64, u64, u64)) -> Range {
            Range {
                since: Some(v),
                until: None,
            }
        }
        const fn before(v: (u64, u64, u64)) -> Range {
            Range {
                since: None,
                until: Some(v),
            }
        }
        match self {
            Difference::CancelledStatus => from((0, 9, 0)),
            Difference::CreateTime => from((0, 6, 0)),
            Difference::OutputsInRequestOrder => before((0, 6, 0)),
            Difference::UserdataTimesMs => from((0, 26, 0)),
            Difference::UserdataAttachment => from((0, 33, 0)),
            Difference::TextOutputsCounted => Range {
                since: Some((0, 26, 0)),
                until: Some((0, 33, 0)),
            },
            Difference::PreviewableOutputsCount => from((0, 33, 0)),
            Difference::CommonpathLine => before((0, 33, 0)),
            Difference::AudioTrailingUnderscore => before((0, 26, 0)),
            Difference::V3NodeData => from((0, 6, 0)),
        }
    }

    /// Whether a server of version `v` shows this difference.
    pub fn applies_to(self, v: &Version) -> bool {
        self.range().contains(v)
    }
}

/// The oldest recorded release.
pub fn oldest() -> &'static Release {
    &RELEASES[0]
}

/// The newest recorded release.
pub fn newest() -> &'static Release {
    &RELEASES[RELEASES.len() - 1]
}

/// The recorded release with exactly this version string.
pub fn find(version: &str) -> Option<&'static Release> {
    RELEASES.iter().find(|r| r.version == version)
}

/// The recorded releases of `line`, oldest first.
pub fn of_line(line: Line) -> impl Iterator<Item = &'static Release> {
    RELEASES.iter().filter(move |r| r.line == line)
}

/// The version strings of every recorded release, oldest first.
pub fn versions() -> impl Iterator<Item = &'static str> {
    RELEASES.iter().map(|r| r.version)
}

/// The newest recorded release not newer than `v` (the one whose
/// behaviour a release between recordings is expected to share), or the
/// oldest when `v` predates them all.
pub fn nearest(v: &Version) -> &'static Release {
    let key = (v.major, v.minor, v.patch);
    RELEASES
        .iter()
        .rev()
        .find(|r| {
            let s = r.semver();
            (s.major, s.minor, s.patch) <= key
        })
        .unwrap_or_else(oldest)
}

/// Each recorded release with the one after it: the upgrades the project
/// writes reports for (`docs/upgrades/`).
pub fn neighbours() -> impl Iterator<Item = (&'static Release, &'static Release)> {
    RELEASES.iter().zip(RELEASES.iter().skip(1))
}

/// The frontend a release pins: the recorded one, or that of the nearest
/// recorded release before it.
pub fn frontend_for(v: &Version) -> &'static str {
    nearest(v).frontend
}

/// Where a frontend's queue panel reads the user's jobs from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueuePanel {
    /// `GET /api/queue` and `GET /api/history`.
    QueueAndHistory,
    /// `GET /api/jobs`.
    Jobs,
}

impl QueuePanel {
    /// The endpoints it calls, as the browser sends them.
    pub fn endpoints(self) -> &'static [&'static str] {
        match self {
            QueuePanel::QueueAndHistory => &["/api/queue", "/api/history"],
            QueuePanel::Jobs => &["/api/jobs"],
        }
    }
}

/// The frontends whose queue panel was watched in a browser
/// (`tests/tests/gateway_browser.rs` asserts each), oldest first.
pub const QUEUE_PANELS: &[(&str, QueuePanel)] = &[
    ("1.36.14", QueuePanel::QueueAndHistory),
    ("1.37.11", QueuePanel::QueueAndHistory),
    ("1.48.7", QueuePanel::Jobs),
    ("1.58.1", QueuePanel::Jobs),
];

/// Where frontend `v`'s queue panel reads from: the watched answer, or the
/// one of the watched frontends on both sides of `v` when they agree (a
/// frontend before the first watched one reads as it does, one after the
/// last as the last). `None` between two watched frontends that differ
/// (1.45.19, the one 0.26.0 pins, lies between 1.37.11 and 1.48.7).
pub fn queue_panel(v: &Version) -> Option<QueuePanel> {
    let key = (v.major, v.minor, v.patch);
    let watched = |s: &str| {
        let w = parse_known(s);
        (w.major, w.minor, w.patch)
    };
    let before = QUEUE_PANELS.iter().rev().find(|(f, _)| watched(f) <= key);
    let after = QUEUE_PANELS.iter().find(|(f, _)| watched(f) >= key);
    match (before, after) {
        (Some((_, a)), Some((_, b))) => (a == b).then_some(*a),
        (Some((_, a)), None) | (None, Some((_, a))) => Some(*a),
        (None, None) => None,
    }
}

/// Parses a version string of this table (they are all valid semver; a
/// test checks it, so the fallback is never taken).
fn parse_known(s: &str) -> Version {
    Version::parse(s).unwrap_or(Version::new(0, 0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_parses_and_sits_on_the_line_its_number_says() {
        for r in RELEASES {
            let v = Version::parse(r.version).unwrap();
            assert_eq!(Line::for_version(&v), r.line, "{}", r.version);
        }
    }

    #[test]
    fn rows_are_oldest_first_and_unique() {
        let v: Vec<Version> = RELEASES.iter().map(Release::semver).collect();
        assert!(v.windows(2).all(|w| w[0] < w[1]), "{v:?}");
    }

    #[test]
    fn every_line_has_a_recorded_release() {
        for line in Line::ALL {
            assert!(of_line(line).next().is_some(), "{line}");
        }
    }

    #[test]
    fn a_release_between_recordings_behaves_as_the_one_before_it() {
        let v = Version::new(0, 34, 0);
        assert_eq!(nearest(&v).version, "0.33.0");
        assert_eq!(nearest(&Version::new(0, 10, 0)).version, "0.9.2");
        assert_eq!(nearest(&Version::new(0, 1, 0)).version, "0.3.64");
        assert!(Difference::UserdataAttachment.applies_to(&v));
        assert!(!Difference::TextOutputsCounted.applies_to(&v));
    }

    #[test]
    fn the_queue_panel_is_known_only_where_watched_frontends_agree() {
        let panel = |s: &str| queue_panel(&Version::parse(s).unwrap());
        assert_eq!(panel("1.37.11"), Some(QueuePanel::QueueAndHistory));
        assert_eq!(panel("1.27.10"), Some(QueuePanel::QueueAndHistory));
        assert_eq!(panel("1.37.12"), None);
        assert_eq!(panel("1.45.19"), None);
        assert_eq!(panel("1.50.0"), Some(QueuePanel::Jobs));
        assert_eq!(panel("1.60.0"), Some(QueuePanel::Jobs));
        for (f, _) in QUEUE_PANELS {
            assert_eq!(Version::parse(f).unwrap().to_string(), *f);
        }
    }

    #[test]
    fn the_recorded_differences_fall_where_the_recordings_show_them() {
        let has = |v: &str, d: Difference| find(v).unwrap().has(d);
        assert!(!has("0.6.0", Difference::CancelledStatus));
        assert!(has("0.9.2", Difference::CancelledStatus));
        assert!(has("0.26.0", Difference::TextOutputsCounted));
        assert!(!has("0.33.0", Difference::TextOutputsCounted));
        assert!(!has("0.11.1", Difference::TextOutputsCounted));
        assert!(has("0.33.0", Difference::UserdataAttachment));
        assert!(!has("0.26.0", Difference::UserdataAttachment));
        assert!(has("0.3.64", Difference::OutputsInRequestOrder));
        assert!(!has("0.6.0", Difference::OutputsInRequestOrder));
    }
}
