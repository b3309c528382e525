//! The router: who is calling, whose prefix the path is under, and whether
//! the gateway answers the call from the queue or passes it to the user's own
//! ComfyUI. `app()` builds it, so tests drive it without a socket.

use crate::config::User;
use crate::error::GatewayError;
use crate::identity::identify;
use crate::state::Gateway;
use crate::{control, listing, proxy, socket, submit, templates, view};
use axum::Router;
use axum::extract::connect_info::MockConnectInfo;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

/// The gateway's router.
pub fn app(gateway: Gateway) -> Router {
    Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .fallback(handle)
        .with_state(gateway)
}

fn redirect(to: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to.to_owned())]).into_response()
}

async fn handle(State(gw): State<Gateway>, req: Request) -> Response {
    // The connection's peer (`serve`), or the one a test router was given.
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .or_else(|| {
            req.extensions()
                .get::<MockConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        });
    let config = gw.config();
    let identified = identify(
        &config.identity,
        gw.htpasswd(),
        &config.users,
        peer,
        req.headers(),
    )
    .await;
    let user = match identified {
        Ok(u) => u.clone(),
        Err(e) => return e.into_response(),
    };
    let path = req.uri().path().to_owned();
    let prefix = user.prefix();
    if path == "/" {
        return redirect(&format!("{prefix}/"));
    }
    match gw.config().user_by_prefix(&path) {
        Some(owner) if owner.id == user.id => {}
        Some(_) => return GatewayError::OtherUsersPath.into_response(),
        // Under a prefix the frontend still asks the root for its tab icons
        // (`/assets/images/favicon_progress_16x16/…`, `/assets/favicon.ico`):
        // those come from the caller's own ComfyUI.
        None if req.method() == Method::GET && path.starts_with("/assets/") => {
            let pq = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or(path);
            return proxy::pass(&gw, &user, req, &pq).await;
        }
        None => return GatewayError::NotFound.into_response(),
    }
    let rest = &path[prefix.len()..];
    if rest.is_empty() {
        return redirect(&format!("{prefix}/"));
    }
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    };
    route(&gw, &user, req, rest.to_owned(), &path_and_query).await
}

/// Answers an intercepted call, or passes it on.
async fn route(
    gw: &Gateway,
    user: &User,
    req: Request,
    rest: String,
    path_and_query: &str,
) -> Response {
    let (api, r) = match rest.strip_prefix("/api") {
        Some(r) if r.is_empty() || r.starts_with('/') => (true, r),
        _ => (false, rest.as_str()),
    };
    let method = req.method().clone();
    let segments: Vec<&str> = r.trim_start_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::POST, ["prompt"]) => submit::submit(gw, user, req).await,
        (&Method::GET, ["prompt"]) => listing::prompt_info(gw, user).await,
        (&Method::GET, ["queue"]) => listing::queue(gw, user).await,
        (&Method::POST, ["queue"]) => control::queue_control(gw, user, req).await,
        (&Method::GET, ["history"]) => listing::history(gw, user, req.uri().query()).await,
        (&Method::GET, ["history", id]) => listing::history_one(gw, user, id).await,
        (&Method::POST, ["history"]) => control::history_control(gw, user, req).await,
        (&Method::POST, ["interrupt"]) => control::interrupt(gw, user, req).await,
        (&Method::GET, ["view"]) if view::is_remote(req.uri().query()) => {
            view::remote(gw, user, req).await
        }
        (&Method::GET, ["default_workflow"]) if api => templates::default_workflow(gw).await,
        (&Method::GET, ["ws"]) => socket::upgrade(gw, user, req, path_and_query).await,
        (&Method::GET, ["templates", file]) if !api => {
            let platform = if *file == "index.json" {
                templates::index(gw).await
            } else {
                templates::template(gw, file).await
            };
            match platform {
                Some(resp) => resp,
                None => proxy::pass(gw, user, req, path_and_query).await,
            }
        }
        _ if api && segments.first() == Some(&"jobs") => {
            match jobs_route(gw, user, &method, &segments, req).await {
                Ok(resp) => resp,
                Err(req) => proxy::pass(gw, user, *req, path_and_query).await,
            }
        }
        _ => proxy::pass(gw, user, req, path_and_query).await,
    }
}

/// The jobs API routes (`/api/jobs...`), where the user's line has them;
/// otherwise the request is handed back to be passed on.
async fn jobs_route(
    gw: &Gateway,
    user: &User,
    method: &Method,
    segments: &[&str],
    req: Request,
) -> Result<Response, Box<Request>> {
    let shapes = match gw.upstream_info(user).await {
        Ok(i) => i.shapes,
        Err(e) => return Ok(e.into_response()),
    };
    match (method, segments) {
        (&Method::GET, ["jobs"]) if shapes.has_jobs_api() => {
            Ok(listing::jobs(gw, user, &shapes, req.uri().query()).await)
        }
        (&Method::GET, ["jobs", id]) if shapes.has_jobs_api() => {
            Ok(listing::job_one(gw, user, &shapes, id).await)
        }
        (&Method::POST, ["jobs", "cancel"]) if shapes.has_cancel_api() => {
            Ok(control::cancel_batch(gw, user, req).await)
        }
        (&Method::POST, ["jobs", id, "cancel"]) if shapes.has_cancel_api() => {
            Ok(control::cancel_one(gw, user, id).await)
        }
        _ => Err(Box::new(req)),
    }
}
