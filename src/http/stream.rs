//! `GET /status/stream`: Server-Sent Events. An event at connect, one each
//! time a new snapshot is published (event `status`, data the whole `/status`
//! document, pre-rendered with the snapshot), and a keep-alive comment every
//! 2 s. Concurrent streams are capped; a client that goes away drops its
//! stream, and with it its permit and its subscription.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use bytes::Bytes;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::auth::Authorized;
use super::reply::json_error;
use crate::engine::store::Snapshots;

/// How often an idle stream sends a comment: proxies keep it open, and a
/// client that went away is noticed (by the failed write) within two periods,
/// freeing its slot.
pub const KEEP_ALIVE: Duration = Duration::from_secs(2);

/// The streams' shared limits.
pub struct Streams {
    pub permits: Arc<Semaphore>,
    /// How often an idle stream sends a keep-alive comment ([`KEEP_ALIVE`]).
    pub keep_alive: Duration,
    /// Turns true when the daemon shuts down: every stream then ends.
    pub closing: watch::Receiver<bool>,
    /// Changes when a reload changed the server token: every stream ends,
    /// so none keeps what it was let in to see under the old one.
    pub reauth: watch::Receiver<u64>,
}

struct State {
    store: Snapshots,
    published: watch::Receiver<u64>,
    closing: watch::Receiver<bool>,
    reauth: watch::Receiver<u64>,
    keep_alive: tokio::time::Interval,
    first: bool,
    /// The generation of the last snapshot sent.
    sent: u64,
    done: bool,
    _permit: OwnedSemaphorePermit,
}

impl State {
    /// The current snapshot as an event; after the first, preceded by the
    /// `transition` events it added (those of skipped snapshots are in
    /// `/status/events`).
    fn event(&mut self) -> Bytes {
        let snap = self.store.load();
        let first = self.sent == 0;
        self.sent = snap.generation;
        if first || snap.sse_transitions.is_empty() {
            return snap.sse.clone();
        }
        let mut both = Vec::with_capacity(snap.sse_transitions.len() + snap.sse.len());
        both.extend_from_slice(&snap.sse_transitions);
        both.extend_from_slice(&snap.sse);
        Bytes::from(both)
    }

    /// The next chunk of the stream, or `None` when it ends.
    async fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if self.first {
            self.first = false;
            return Some(self.event());
        }
        if !*self.closing.borrow() {
            tokio::select! {
                changed = self.published.changed() => {
                    changed.ok()?;
                    self.keep_alive.reset();
                    return Some(self.event());
                }
                _ = self.keep_alive.tick() => {
                    return Some(Bytes::from_static(b": keep-alive\n\n"));
                }
                _ = self.closing.changed() => {}
                _ = self.reauth.changed() => {
                    self.done = true;
                    return None;
                }
            }
        }
        // Closing: send the last snapshot (it says `shutting_down`) if this
        // client has not seen it, then end.
        self.done = true;
        (self.store.load().generation > self.sent).then(|| self.event())
    }
}

fn event_stream_response() -> actix_web::HttpResponseBuilder {
    let mut b = HttpResponse::Ok();
    b.insert_header((CONTENT_TYPE, HeaderValue::from_static("text/event-stream")))
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .insert_header(("X-Accel-Buffering", "no"));
    b
}

pub async fn stream(
    _: Authorized,
    req: actix_web::HttpRequest,
    store: web::Data<Snapshots>,
    streams: web::Data<Streams>,
) -> HttpResponse {
    // HEAD: the headers, and done. A stream (and its slot) only for GET.
    if req.method() == actix_web::http::Method::HEAD {
        return event_stream_response().finish();
    }
    let Ok(permit) = streams.permits.clone().try_acquire_owned() else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many status streams open",
        );
    };
    let mut keep_alive = tokio::time::interval(streams.keep_alive);
    keep_alive.reset();
    let mut published = store.subscribe();
    published.borrow_and_update();
    let state = State {
        store: store.get_ref().clone(),
        published,
        closing: streams.closing.clone(),
        reauth: {
            let mut r = streams.reauth.clone();
            r.borrow_and_update();
            r
        },
        keep_alive,
        first: true,
        sent: 0,
        done: false,
        _permit: permit,
    };
    let body = futures_util::stream::unfold(state, |mut st| async move {
        let event = st.next().await?;
        Some((Ok::<Bytes, std::convert::Infallible>(event), st))
    });
    event_stream_response().streaming(body)
}
