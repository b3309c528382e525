//! `UserdataPath` refuses what would leave the user's directory once
//! ComfyUI decodes the name again (it percent-decodes userdata names after
//! routing), and keeps accepting names that merely contain `%`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_adapter::model::userdata::{UserdataPath, UserdataPathError};

#[test]
fn a_percent_encoded_dot_dot_is_refused() {
    let workflows = UserdataPath::new("workflows").unwrap();
    for bad in [
        "..%2Fcomfy.settings.json",
        "%2E%2E%2Fcomfy.settings.json",
        "%2e%2e",
        "x%2F..%2F..%2Fcomfy.settings.json",
        "%252e%252e%252fcomfy.settings.json",
        "%2Fetc%2Fpasswd",
        "a%5C..%5Cb",
        "a%00b",
    ] {
        let err = workflows.join(bad).unwrap_err();
        assert!(
            matches!(err, UserdataPathError::Encoded { .. }),
            "{bad:?}: {err:?}"
        );
    }
}

#[test]
fn names_with_a_percent_that_decode_to_something_harmless_are_kept() {
    for ok in ["100%.json", "a%2Fb.json", "50%25 off.json", "%41.json"] {
        let p = UserdataPath::new(ok).unwrap();
        assert_eq!(p.as_str(), ok);
    }
}
