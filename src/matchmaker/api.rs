//! The matchmaker's HTTP/JSON API (documented in `docs/matchmaker-api.md`).
//!
//! | method and path | what |
//! |---|---|
//! | `POST /v1/tickets` | create a ticket (idempotent by `clientKey`): 201, or 200 with the existing ticket |
//! | `POST /v1/tickets/batch` | create up to 1000 tickets in one request |
//! | `GET /v1/tickets/{id}?waitSeconds=N` | read a ticket; with `waitSeconds`, wait (at most 60 s) until it leaves `Pending` |
//! | `GET /v1/tickets/{id}/events?waitSeconds=N` | a stream (NDJSON): the ticket now and at every change of state, until it leaves `Pending` |
//! | `DELETE /v1/tickets/{id}` | cancel a waiting ticket |
//! | `GET /v1/matches?queue=&tenant=&pool=&after=&limit=&waitSeconds=` | the queue's matches after a cursor (long poll) |
//! | `GET /v1/matches/{id}` | read a match |
//! | `POST /v1/matches/{id}/backfill` | report lost players and ask for backfill |
//! | `GET`, `DELETE /v1/backfills/{id}` | read or cancel a backfill request |
//! | `GET /v1/queues?tenant=` | the configured queues |
//! | `GET /livez`, `/readyz`, `/metrics` | health and Prometheus metrics |
//!
//! Errors are `{"error": {"code": "...", "message": "..."}}` with a status that fits the code.
//!
//! Tenant binding: when the matchmaker has tenant credentials ([`Access::tenants`], the shared
//! cell matchmaker), every `/v1` request carries `Authorization: Bearer <token>` and acts as the
//! token's tenant only: no or an unknown token is 401; naming another tenant (a ticket's
//! `tenant`, a `tenant=` parameter) is 403; the id of another tenant's ticket, match or backfill
//! is 404, as if it did not exist. Without credentials ([`Access::open`]) requests name their
//! tenant, as a single-tenant matchmaker expects. Health and metrics need no token.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::config::TenantTokens;
use super::engine::{Engine, EngineError, NewTicket, TicketState};
use super::service::unix_ms;

/// Longest long poll.
pub const MAX_WAIT_SECONDS: u64 = 60;
/// Most tickets in one batch request.
pub const MAX_BATCH: usize = 1000;
/// Most matches in one feed answer.
pub const MAX_FEED: usize = 1000;

/// Who may act as which tenant.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// `None`: open (requests name their tenant). `Some`: bearer tokens are required; the inner
    /// `None` until a valid credentials file is loaded (every `/v1` request is then 503).
    tenants: Option<Arc<RwLock<Option<TenantTokens>>>>,
}

impl Access {
    /// No credentials: every request names its tenant (a single-tenant matchmaker).
    #[must_use]
    pub fn open() -> Self {
        Self::default()
    }

    /// Tenant credentials required; set them with [`Access::set_tenants`].
    #[must_use]
    pub fn tenants() -> Self {
        Self {
            tenants: Some(Arc::new(RwLock::new(None))),
        }
    }

    /// Replaces the credentials (a reload). Ignored when the access is open.
    pub fn set_tenants(&self, tokens: TenantTokens) {
        if let Some(lock) = &self.tenants {
            *lock
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tokens);
        }
    }

    /// The tenant a request acts as: `Ok(None)` when open, `Ok(Some(tenant))` for a known token.
    fn caller(&self, headers: &HeaderMap) -> Result<Option<String>, Box<Response>> {
        let Some(lock) = &self.tenants else {
            return Ok(None);
        };
        let guard = lock
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(tokens) = guard.as_ref() else {
            return Err(Box::new(json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &error_body("NotReady", "tenant credentials are not loaded yet"),
            )));
        };
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match token.and_then(|t| tokens.tenant_of(t)) {
            Some(tenant) => Ok(Some(tenant.to_owned())),
            None => {
                let mut response = json_response(
                    StatusCode::UNAUTHORIZED,
                    &error_body(
                        "Unauthorized",
                        "a bearer token of a tenant is required (Authorization: Bearer <token>, from the Secret gamecell-matchmaker)",
                    ),
                );
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
                Err(Box::new(response))
            }
        }
    }
}

/// The tenant a request may act as: the caller's, refusing another one it names (403); or, when
/// open, the one it names.
fn tenant_for(caller: Option<&str>, named: Option<&str>) -> Result<Option<String>, Box<Response>> {
    match (caller, named) {
        (Some(own), Some(other)) if own != other => Err(Box::new(json_response(
            StatusCode::FORBIDDEN,
            &error_body(
                "Forbidden",
                &format!("this token acts as tenant {own} only, not {other}"),
            ),
        ))),
        (Some(own), _) => Ok(Some(own.to_owned())),
        (None, named) => Ok(named.map(str::to_owned)),
    }
}

/// Refuses an object of another tenant as if it did not exist.
fn owned_by(caller: Option<&str>, tenant: &str, id: &str) -> Result<(), Box<Response>> {
    match caller {
        Some(own) if own != tenant => Err(Box::new(error_response(&EngineError::NotFound(
            id.to_owned(),
        )))),
        _ => Ok(()),
    }
}

#[derive(Clone)]
struct Shared {
    engine: Arc<Engine>,
    access: Access,
}

impl std::ops::Deref for Shared {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}

/// The API's routes over `engine`, open (requests name their tenant).
pub fn router(engine: Arc<Engine>) -> Router {
    router_with(engine, Access::open())
}

/// The API's routes over `engine`, with `access` deciding which tenant a request acts as.
pub fn router_with(engine: Arc<Engine>, access: Access) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/queues", get(queues))
        .route("/v1/tickets", post(create))
        .route("/v1/tickets/batch", post(create_batch))
        .route("/v1/tickets/{id}", get(read_ticket).delete(cancel_ticket))
        .route("/v1/tickets/{id}/events", get(watch_ticket))
        .route("/v1/matches", get(feed))
        .route("/v1/matches/{id}", get(read_match))
        .route("/v1/matches/{id}/backfill", post(backfill))
        .route(
            "/v1/backfills/{id}",
            get(read_backfill).delete(cancel_backfill),
        )
        .with_state(Shared { engine, access })
}

fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn error_body(code: &str, message: &str) -> serde_json::Value {
    json!({"error": {"code": code, "message": message}})
}

fn status_of(e: &EngineError) -> StatusCode {
    match e {
        EngineError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
        EngineError::TenantRequired
        | EngineError::AmbiguousQueue(_)
        | EngineError::InvalidTicket(_)
        | EngineError::InvalidBackfill(_) => StatusCode::BAD_REQUEST,
        EngineError::UnknownQueue(_) | EngineError::NotFound(_) => StatusCode::NOT_FOUND,
        EngineError::TenantLimitExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
        EngineError::KeyConflict { .. }
        | EngineError::Conflict(_)
        | EngineError::BackfillDisabled(_) => StatusCode::CONFLICT,
        EngineError::QueueRemoved(_) => StatusCode::GONE,
    }
}

fn error_response(e: &EngineError) -> Response {
    json_response(status_of(e), &error_body(e.code(), &e.to_string()))
}

fn bad_request(message: &str) -> Response {
    json_response(StatusCode::BAD_REQUEST, &error_body("BadRequest", message))
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))
}

async fn readyz(State(engine): State<Shared>) -> Response {
    if engine.is_configured() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no valid configuration loaded",
        )
            .into_response()
    }
}

async fn metrics(State(engine): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        engine.metrics().encode(),
    )
        .into_response()
}

#[derive(Deserialize)]
struct TenantQuery {
    tenant: Option<String>,
}

async fn queues(
    State(engine): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<TenantQuery>,
) -> Response {
    let caller = match engine.access.caller(&headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let tenant = match tenant_for(caller.as_deref(), q.tenant.as_deref()) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    json_response(
        StatusCode::OK,
        &json!({"queues": engine.queues(tenant.as_deref())}),
    )
}

/// The `tenant` field of a ticket body, read without building the ticket.
#[derive(Deserialize)]
struct TenantField<'a> {
    #[serde(borrow, default)]
    tenant: Option<std::borrow::Cow<'a, str>>,
}

async fn create(State(engine): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let caller = match engine.access.caller(&headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    // A tenant at its open-ticket limit is refused before its ticket is parsed: a flood of
    // refused requests then costs the server little more than the HTTP exchange, and leaves
    // the CPU to the other tenants (see "Multi-tenancy and fairness" in the API document).
    let tenant = match &caller {
        Some(own) => Some(std::borrow::Cow::Borrowed(own.as_str())),
        None => serde_json::from_slice::<TenantField<'_>>(&body)
            .ok()
            .and_then(|f| f.tenant),
    };
    if let Some(t) = tenant
        && let Err(e) = engine.admit(&t)
    {
        return error_response(&e);
    }
    let mut req: NewTicket = match parse(&body) {
        Ok(r) => r,
        Err(message) => return bad_request(&message),
    };
    match tenant_for(caller.as_deref(), req.tenant.as_deref()) {
        Ok(t) => req.tenant = t,
        Err(r) => return *r,
    }
    match engine.create_ticket(req, unix_ms()) {
        Ok((view, true)) => json_response(StatusCode::CREATED, &view),
        Ok((view, false)) => json_response(StatusCode::OK, &view),
        Err(e) => error_response(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    tickets: Vec<NewTicket>,
}

async fn create_batch(State(engine): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let caller = match engine.access.caller(&headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let mut batch: Batch = match parse(&body) {
        Ok(r) => r,
        Err(message) => return bad_request(&message),
    };
    if batch.tickets.len() > MAX_BATCH {
        return bad_request(&format!("at most {MAX_BATCH} tickets per batch"));
    }
    // A batch naming another tenant anywhere is refused whole: nothing of it is created.
    for ticket in &mut batch.tickets {
        match tenant_for(caller.as_deref(), ticket.tenant.as_deref()) {
            Ok(t) => ticket.tenant = t,
            Err(r) => return *r,
        }
    }
    let now = unix_ms();
    let results: Vec<serde_json::Value> = batch
        .tickets
        .into_iter()
        .map(|t| match engine.create_ticket(t, now) {
            Ok((view, created)) => json!({"ticket": view, "created": created}),
            Err(e) => error_body(e.code(), &e.to_string()),
        })
        .collect();
    json_response(StatusCode::OK, &json!({"results": results}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WaitQuery {
    wait_seconds: Option<f64>,
}

fn wait_of(seconds: Option<f64>) -> Duration {
    let s = seconds.unwrap_or(0.0);
    if s.is_finite() && s > 0.0 {
        Duration::from_secs_f64(s.min(MAX_WAIT_SECONDS as f64))
    } else {
        Duration::ZERO
    }
}

async fn read_ticket(
    State(engine): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Response {
    let caller = match engine.access.caller(&headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if let Err(r) = own_ticket(&engine, caller.as_deref(), &id) {
        return *r;
    }
    let deadline = tokio::time::Instant::now() + wait_of(q.wait_seconds);
    let mut rx = match engine.subscribe(&id) {
        Ok(rx) => rx,
        Err(e) => return error_response(&e),
    };
    loop {
        let view = match engine.ticket(&id) {
            Ok(v) => v,
            Err(e) => return error_response(&e),
        };
        if view.state != TicketState::Pending || tokio::time::Instant::now() >= deadline {
            return json_response(StatusCode::OK, &view);
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            _ => {
                return match engine.ticket(&id) {
                    Ok(v) => json_response(StatusCode::OK, &v),
                    Err(e) => error_response(&e),
                };
            }
        }
    }
}

struct Watch {
    engine: Shared,
    id: String,
    rx: tokio::sync::watch::Receiver<u64>,
    last: Option<TicketState>,
    done: bool,
    deadline: tokio::time::Instant,
}

fn ndjson_line<T: Serialize>(value: &T) -> Vec<u8> {
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    line
}

async fn watch_ticket(
    State(engine): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Response {
    let caller = match engine.access.caller(&headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if let Err(r) = own_ticket(&engine, caller.as_deref(), &id) {
        return *r;
    }
    let rx = match engine.subscribe(&id) {
        Ok(rx) => rx,
        Err(e) => return error_response(&e),
    };
    if let Err(e) = engine.ticket(&id) {
        return error_response(&e);
    }
    let wait = wait_of(Some(q.wait_seconds.unwrap_or(MAX_WAIT_SECONDS as f64)));
    let watch = Watch {
        engine,
        id,
        rx,
        last: None,
        done: false,
        deadline: tokio::time::Instant::now() + wait,
    };
    let stream = futures::stream::unfold(watch, |mut w| async move {
        if w.done {
            return None;
        }
        loop {
            let view = match w.engine.ticket(&w.id) {
                Ok(v) => v,
                Err(e) => {
                    w.done = true;
                    let line = ndjson_line(&error_body(e.code(), &e.to_string()));
                    return Some((Ok::<_, std::io::Error>(line), w));
                }
            };
            if w.last != Some(view.state) {
                w.last = Some(view.state);
                w.done = view.state != TicketState::Pending;
                return Some((Ok(ndjson_line(&view)), w));
            }
            match tokio::time::timeout_at(w.deadline, w.rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

/// Refuses a ticket of another tenant than the caller's (404, as if unknown).
fn own_ticket(engine: &Engine, caller: Option<&str>, id: &str) -> Result<(), Box<Response>> {
    if caller.is_none() {
        return Ok(());
    }
    let view = engine
        .ticket(id)
        .map_err(|e| Box::new(error_response(&e)))?;
    owned_by(caller, &view.tenant, id)
}

/// Refuses a match of another tenant than the caller's (404, as if unknown).
fn own_match(engine: &Engine, caller: Option<&str>, id: &str) -> Result<(), Box<Response>> {
    if caller.is_none() {
        return Ok(());
    }
    let view = engine
        .get_match(id)
        .map_err(|e| Box::new(error_response(&e)))?;
    owned_by(caller, &view.tenant, id)
}

/// Refuses a backfill request for a match of another tenant (404, as if unknown).
fn own_backfill(engine: &Engine, caller: Option<&str>, id: &str) -> Result<(), Box<Response>> {
    if caller.is_none() {
        return Ok(());
    }
    let view = engine
        .get_backfill(id)
        .map_err(|e| Box::new(error_response(&e)))?;
    own_match(engine, caller, &view.match_id)
        .map_err(|_| Box::new(error_response(&EngineError::NotFound(id.to_owned()))))
}

async fn cancel_ticket(
    State(engine): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let caller = match engine.access.caller(&headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if let Err(r) = own_ticket(&engine, caller.as_deref(), &id) {
        return *r;
    }
    match engine.cancel_ticket(&id, unix_ms()) {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => error_response(&e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FeedQuery {
    tenant: Option<String>,
    pool: Option<String>,
    queue: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
    wait_seconds: Option<f64>,
}

async fn feed(
    State(engine): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<FeedQuery>,
) -> Response {
    let caller = match engine.access.caller(&headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let tenant = match tenant_for(caller.as_deref(), q.tenant.as_deref()) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let Some(queue) = q.queue.as_deref() else {
        return bad_request("the queue parameter is required");
    };
    let after = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_FEED);
    let deadline = tokio::time::Instant::now() + wait_of(q.wait_seconds);
    loop {
        let (matches, next, mut rx) =
            match engine.matches_after(tenant.as_deref(), q.pool.as_deref(), queue, after, limit) {
                Ok(r) => r,
                Err(e) => return error_response(&e),
            };
        if !matches.is_empty() || tokio::time::Instant::now() >= deadline {
            return json_response(StatusCode::OK, &json!({"matches": matches, "next": next}));
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            return json_response(StatusCode::OK, &json!({"matches": matches, "next": next}));
        }
    }
}

async fn read_match(
    State(engine): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let caller = match engine.access.caller(&headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if let Err(r) = own_match(&engine, caller.as_deref(), &id) {
        return *r;
    }
    match engine.get_match(&id) {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => error_response(&e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BackfillRequest {
    lost_players: Vec<String>,
}

async fn backfill(
    State(engine): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let caller = match engine.access.caller(&headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if let Err(r) = own_match(&engine, caller.as_deref(), &id) {
        return *r;
    }
    let req: BackfillRequest = match parse(&body) {
        Ok(r) => r,
        Err(message) => return bad_request(&message),
    };
    if req.lost_players.is_empty() {
        return bad_request("lostPlayers must name at least one player");
    }
    match engine.request_backfill(&id, &req.lost_players, unix_ms()) {
        Ok(v) => json_response(StatusCode::CREATED, &v),
        Err(e) => error_response(&e),
    }
}

async fn read_backfill(
    State(engine): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let caller = match engine.access.caller(&headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if let Err(r) = own_backfill(&engine, caller.as_deref(), &id) {
        return *r;
    }
    match engine.get_backfill(&id) {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => error_response(&e),
    }
}

async fn cancel_backfill(
    State(engine): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let caller = match engine.access.caller(&headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if let Err(r) = own_backfill(&engine, caller.as_deref(), &id) {
        return *r;
    }
    match engine.cancel_backfill(&id, unix_ms()) {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => error_response(&e),
    }
}
