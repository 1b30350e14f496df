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

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::engine::{Engine, EngineError, NewTicket, TicketState};
use super::service::unix_ms;

/// Longest long poll.
pub const MAX_WAIT_SECONDS: u64 = 60;
/// Most tickets in one batch request.
pub const MAX_BATCH: usize = 1000;
/// Most matches in one feed answer.
pub const MAX_FEED: usize = 1000;

type Shared = Arc<Engine>;

/// The API's routes over `engine`.
pub fn router(engine: Arc<Engine>) -> Router {
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
        .with_state(engine)
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

async fn queues(State(engine): State<Shared>, Query(q): Query<TenantQuery>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"queues": engine.queues(q.tenant.as_deref())}),
    )
}

async fn create(State(engine): State<Shared>, body: Bytes) -> Response {
    let req: NewTicket = match parse(&body) {
        Ok(r) => r,
        Err(message) => return bad_request(&message),
    };
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

async fn create_batch(State(engine): State<Shared>, body: Bytes) -> Response {
    let batch: Batch = match parse(&body) {
        Ok(r) => r,
        Err(message) => return bad_request(&message),
    };
    if batch.tickets.len() > MAX_BATCH {
        return bad_request(&format!("at most {MAX_BATCH} tickets per batch"));
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
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Response {
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
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Response {
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

async fn cancel_ticket(State(engine): State<Shared>, Path(id): Path<String>) -> Response {
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

async fn feed(State(engine): State<Shared>, Query(q): Query<FeedQuery>) -> Response {
    let Some(queue) = q.queue.as_deref() else {
        return bad_request("the queue parameter is required");
    };
    let after = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_FEED);
    let deadline = tokio::time::Instant::now() + wait_of(q.wait_seconds);
    loop {
        let (matches, next, mut rx) =
            match engine.matches_after(q.tenant.as_deref(), q.pool.as_deref(), queue, after, limit)
            {
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

async fn read_match(State(engine): State<Shared>, Path(id): Path<String>) -> Response {
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

async fn backfill(State(engine): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
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

async fn read_backfill(State(engine): State<Shared>, Path(id): Path<String>) -> Response {
    match engine.get_backfill(&id) {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => error_response(&e),
    }
}

async fn cancel_backfill(State(engine): State<Shared>, Path(id): Path<String>) -> Response {
    match engine.cancel_backfill(&id, unix_ms()) {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => error_response(&e),
    }
}
