//! 089–092: `/view` of an output, a missing file, a traversal; an upload.

use super::super::RecordError;
use super::super::capture::{Request, RequestBody};
use super::super::session::Session;
use comfy_adapter::error::ComfyError;

/// A 1×1 white PNG for the upload probe.
const PIXEL_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xff, 0xff, 0x3f,
    0x00, 0x05, 0xfe, 0x02, 0xfe, 0x0d, 0xef, 0x46, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

/// The multipart form of the upload probe.
pub(crate) fn upload_form() -> Result<reqwest::multipart::Form, ComfyError> {
    let part = reqwest::multipart::Part::bytes(PIXEL_PNG)
        .file_name("fixture_upload.png")
        .mime_str("image/png")
        .map_err(|e| ComfyError::InvalidInput {
            field: "upload",
            reason: e.to_string(),
        })?;
    Ok(reqwest::multipart::Form::new()
        .part("image", part)
        .text("type", "input")
        .text("overwrite", "true"))
}

pub(super) async fn run(
    s: &mut Session<'_>,
    output: Option<&(String, String)>,
) -> Result<(), RecordError> {
    match output {
        Some((filename, subfolder)) => {
            s.probe(
                "view-output-image",
                Request::get("/view")
                    .query("filename", filename.clone())
                    .query("subfolder", subfolder.clone())
                    .query("type", "output"),
            )
            .await?;
        }
        None => s.skip("view-output-image", "the success run listed no image"),
    }
    s.probe(
        "view-missing",
        Request::get("/view")
            .query("filename", "nope.png")
            .query("type", "output"),
    )
    .await?;
    s.probe(
        "view-traversal",
        Request::get("/view")
            .query("filename", "../../etc/passwd")
            .query("type", "output"),
    )
    .await?;
    s.probe(
        "upload-image",
        Request::post(
            "/upload/image",
            RequestBody::Upload {
                description:
                    "multipart: image=fixture_upload.png (1x1 png), type=input, overwrite=true"
                        .into(),
            },
        ),
    )
    .await?;
    Ok(())
}
