//! Just before a job's prompt is sent: does the job fit the ComfyUI this worker has now?
//! Its ComfyUI may have changed since the queue routed the job here (replaced while the
//! worker was idle), and the queue routes on registrations, not on prompts. A job that does
//! not fit is handed back unrun (`unfit` in the fail report): the queue gives the attempt
//! back and, for a prompt this catalogue lacks, offers the job to other workers only.

use comfy_queue_api::{LeasedJob, Unfit};
use comfy_routing::{Catalogue, Needs, Requirements, Server};

/// What the worker runs now.
#[derive(Debug, Clone, Copy)]
pub struct Here<'a> {
    /// The ComfyUI version detected.
    pub version: Option<&'a str>,
    /// The capabilities registered.
    pub capabilities: &'a [String],
    /// Its node catalogue, parsed, when the queue has it (a hand-back for the prompt needs
    /// the queue to know which catalogue refused it).
    pub catalogue: Option<&'a Catalogue>,
}

/// Why `job` cannot run here, with the sentence for the report; `None` when it fits.
pub fn unfit(job: &LeasedJob, here: Here<'_>) -> Option<(Unfit, String)> {
    let server = Server {
        version: here.version,
        capabilities: here.capabilities,
        catalogue: None,
    };
    // The queue refused a malformed `requires` at submit; one it stored is readable.
    if let Ok(req) = Requirements::from_metadata(&job.metadata)
        && let Some(why) = req.unmet(&server)
    {
        return Some((
            Unfit::Requires,
            format!("handed back unrun: the job {why} (this worker's ComfyUI)"),
        ));
    }
    let misfit = here.catalogue?.misfit(&Needs::of_workflow(&job.workflow))?;
    let version = here.version.unwrap_or("of unknown version");
    Some((
        Unfit::Catalogue,
        format!("handed back unrun: this worker's ComfyUI {version} has {misfit}"),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::{Value, json};
    use uuid::Uuid;

    fn job(workflow: Value, metadata: Value) -> LeasedJob {
        LeasedJob {
            id: Uuid::nil(),
            workflow,
            user_id: "alice".into(),
            metadata,
            priority: 1,
            lease_token: "t".into(),
            lease_expires_at: String::new(),
            lease_seconds: 60.0,
            heartbeat_interval_seconds: 20.0,
            attempt: 1,
            max_attempts: 3,
            inputs: Vec::new(),
        }
    }

    #[test]
    fn a_job_fits_or_says_why_not() {
        let cat =
            Catalogue::from_slice(br#"{"SaveImage": {"input": {}, "output_node": true}}"#).unwrap();
        let here = Here {
            version: Some("0.11.1"),
            capabilities: &[],
            catalogue: Some(&cat),
        };
        let plain = json!({"1": {"class_type": "SaveImage", "inputs": {}}});
        assert_eq!(unfit(&job(plain.clone(), json!({})), here), None);
        let (kind, why) = unfit(
            &job(plain.clone(), json!({"requires": {"comfyui": "<0.10"}})),
            here,
        )
        .unwrap();
        assert_eq!(kind, Unfit::Requires);
        assert_eq!(
            why,
            "handed back unrun: the job needs ComfyUI <0.10, not 0.11.1 (this worker's ComfyUI)"
        );
        let flux = json!({"1": {"class_type": "FluxGuidance", "inputs": {}}});
        let (kind, why) = unfit(&job(flux.clone(), json!({})), here).unwrap();
        assert_eq!(kind, Unfit::Catalogue);
        assert_eq!(
            why,
            "handed back unrun: this worker's ComfyUI 0.11.1 has no node class FluxGuidance"
        );
        // Without a catalogue the queue knows, the prompt is left to ComfyUI.
        let blind = Here {
            catalogue: None,
            ..here
        };
        assert_eq!(unfit(&job(flux, json!({})), blind), None);
    }
}
