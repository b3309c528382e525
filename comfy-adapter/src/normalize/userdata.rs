use crate::model::server::Line;
use crate::model::userdata::{UserdataEntry, UserdataTreeEntry};
use crate::wire::userdata::{FileInfoWire, TreeEntryWire};

/// A `full_info` entry → [`UserdataEntry`], times in seconds. The cancel-API
/// line (0.26+) sends whole milliseconds where older lines send float
/// seconds (`097-userdata-post-full_info.json`); `/v2/userdata` stays in
/// seconds on every line.
pub fn file_info(w: FileInfoWire, line: Line) -> UserdataEntry {
    let secs = |t: Option<f64>| match line {
        Line::CancelApi => t.map(|ms| ms / 1000.0),
        Line::Legacy | Line::JobsApi => t,
    };
    UserdataEntry {
        path: w.path,
        size: w.size,
        modified: secs(w.modified),
        created: secs(w.created),
    }
}

/// A `/v2/userdata` entry → [`UserdataTreeEntry`].
pub fn tree_entry(w: TreeEntryWire) -> UserdataTreeEntry {
    UserdataTreeEntry {
        is_dir: w.kind == "directory",
        name: w.name,
        path: w.path,
        size: w.size,
        modified: w.modified,
    }
}
