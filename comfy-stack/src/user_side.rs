//! The user side of the demo: an emulated CPU ComfyUI serving a real
//! frontend build (fetched from PyPI and cached by `comfy-frontend` when it
//! is not there yet) and a gateway in front of it, so a browser opened on
//! the printed URL is a platform user's own ComfyUI whose Run goes to the
//! queue.

use anyhow::Context;
use comfy_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use comfy_frontend::FrontendCache;
use comfy_gateway::config::{Identity, User};
use comfy_gateway::{Config, Gateway};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::task::JoinHandle;

/// The platform's template workflows (UI format, `workflows/ui/`), built in
/// so the demo provisions them from any directory.
pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "image_flux2_klein_text_to_image.json",
        include_str!("../../workflows/ui/image_flux2_klein_text_to_image.json"),
    ),
    (
        "image_flux2_text_to_image_9b.json",
        include_str!("../../workflows/ui/image_flux2_text_to_image_9b.json"),
    ),
    (
        "tiny_bypass_mute.json",
        include_str!("../../workflows/ui/tiny_bypass_mute.json"),
    ),
    (
        "video_ltx2_t2v.json",
        include_str!("../../workflows/ui/video_ltx2_t2v.json"),
    ),
    (
        "video_ltx2_t2v_distilled.json",
        include_str!("../../workflows/ui/video_ltx2_t2v_distilled.json"),
    ),
];

/// The placeholder models the templates name (for the emulated GPU ComfyUI).
pub fn template_models() -> comfy_emulator::ModelFiles {
    let parsed: Vec<serde_json::Value> = TEMPLATES
        .iter()
        .filter_map(|(_, text)| serde_json::from_str(text).ok())
        .collect();
    comfy_emulator::template_models(&parsed)
}

/// How to start the user side.
#[derive(Debug, Clone)]
pub struct UserSideOptions {
    /// The queue's URL.
    pub queue_url: String,
    /// The emulated user ComfyUI's release.
    pub version: String,
    /// The frontend it serves; `None`: the one that release pins.
    pub frontend: Option<String>,
    /// Where the gateway listens.
    pub listen: SocketAddr,
    /// Where the gateway keeps its state and the templates it provisions.
    pub state_dir: PathBuf,
    /// The one user (`anonymous_user`: the demo needs no login).
    pub user: String,
}

/// The running user side.
#[derive(Debug)]
pub struct UserSide {
    /// The emulated user ComfyUI.
    pub comfyui: EmulatorHandle,
    /// The gateway's base URL.
    pub gateway_url: String,
    /// The frontend version served, or why none is.
    pub frontend: Result<String, String>,
    /// The URL to open in a browser.
    pub open_url: String,
    task: JoinHandle<()>,
}

impl UserSide {
    /// Stops the gateway and the emulated ComfyUI.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        self.comfyui.stop().await;
    }
}

/// Starts the emulated user ComfyUI and the gateway in front of it, and
/// provisions the templates into the user's workflows menu.
pub async fn start_user_side(o: UserSideOptions) -> anyhow::Result<UserSide> {
    let semver = comfy_adapter::normalize::parse_version(&o.version)
        .with_context(|| format!("{} is not a ComfyUI version", o.version))?;
    let fe = o
        .frontend
        .clone()
        .unwrap_or_else(|| comfy_adapter::releases::frontend_for(&semver).to_owned());
    let cache = FrontendCache::new(FrontendCache::default_root());
    let mut config = EmulatorConfig::new(&o.version);
    let frontend = match cache.fetch(&fe).await {
        Ok(dir) => {
            config = config.frontend_dir(dir);
            Ok(fe)
        }
        Err(e) => Err(format!(
            "frontend {fe} not available ({e}); the gateway serves the API only"
        )),
    };
    let comfyui = Emulator::start(config)
        .await
        .context("starting the emulated user ComfyUI")?;

    let templates = o.state_dir.join("templates");
    std::fs::create_dir_all(&templates)
        .with_context(|| format!("creating {}", templates.display()))?;
    for (name, text) in TEMPLATES {
        std::fs::write(templates.join(name), text)
            .with_context(|| format!("writing {}", templates.join(name).display()))?;
    }
    let upstream = url::Url::parse(&comfyui.url()).context("the emulator's URL")?;
    let config = Config {
        queue_url: url::Url::parse(&o.queue_url).context("the queue's URL")?,
        queue_user_header: "X-Forwarded-User".into(),
        identity: Identity {
            anonymous_user: Some(o.user.clone()),
            ..Identity::default()
        },
        multi_user_upstream: None,
        users: vec![User {
            id: o.user.clone(),
            upstream: Some(upstream),
            prefix: None,
        }],
        templates_dir: Some(templates),
        default_workflow: Some("image_flux2_klein_text_to_image.json".into()),
        state_dir: Some(o.state_dir.clone()),
        max_submit_bytes: 12 * 1024 * 1024,
        view_wait_secs: 120,
        ws_ping_secs: 30,
        sealing_key_file: None,
    };
    config.validate()?;
    let gateway = Gateway::new(config)?;
    comfy_gateway::provision_all(&gateway).await;
    let listener = match tokio::net::TcpListener::bind(o.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, addr = %o.listen, "gateway address busy; using a free port");
            tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?
        }
    };
    let gateway_url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        if let Err(e) = comfy_gateway::serve(listener, gateway, std::future::pending()).await {
            tracing::error!(error = %e, "gateway ended");
        }
    });
    Ok(UserSide {
        comfyui,
        open_url: format!("{gateway_url}/{}/", o.user),
        gateway_url,
        frontend,
        task,
    })
}

/// Starts a gateway in front of the queue at `queue_url` for one user, `user`, whose own
/// ComfyUI is at `upstream`: the user's paths are under `/<user>/`, and the identity comes
/// from the `X-Forwarded-User` header. Answers the gateway's base URL; it serves until the
/// runtime ends. For benchmarks and tests.
pub async fn start_gateway(queue_url: &str, user: &str, upstream: &str) -> anyhow::Result<String> {
    let config: Config = serde_json::from_value(serde_json::json!({
        "queue_url": queue_url,
        "users": [{"id": user, "upstream": upstream}],
    }))
    .context("the gateway's settings")?;
    config.validate()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(comfy_gateway::serve(
        listener,
        Gateway::new(config)?,
        std::future::pending(),
    ));
    Ok(url)
}
