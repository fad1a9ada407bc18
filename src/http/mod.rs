//! The HTTP layer (actix-web). It does no work of its own: load the snapshot,
//! pick the pre-rendered variant, set headers, answer.

use std::net::TcpListener;

use actix_web::{web, App, HttpServer};

use crate::engine::store::Snapshots;

pub mod auth;
mod conditional;
pub mod push;
mod reply;
mod routes;
pub mod stream;

/// How long a connection may hold data its client does not accept (a full
/// receive window, or no acknowledgement) before the kernel drops it
/// (`TCP_USER_TIMEOUT`, which Linux applies to zero-window probes too): a
/// stream reader that stopped reading gives its slot and buffers back.
pub const STALL_BOUND: std::time::Duration = std::time::Duration::from_secs(10);

/// Sets [`STALL_BOUND`] on a new TCP connection.
fn bound_stalls(conn: &dyn std::any::Any, _: &mut actix_web::dev::Extensions) {
    if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        if let Err(e) = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(STALL_BOUND)) {
            tracing::debug!(error = %e, "cannot bound stalled connections");
        }
    }
}

/// Builds the server on an already bound listener. It is not running until
/// awaited. At most `max_connections` are open at once (all workers
/// together); more wait in the kernel's accept queue until one closes.
/// What the routes share: the store's read side, the push route, the token
/// check, the streams' limits and the notifier.
pub struct Shared {
    pub snapshots: Snapshots,
    pub push_route: std::sync::Arc<push::PushRoute>,
    pub access: std::sync::Arc<auth::Access>,
    pub streams: stream::Streams,
    pub notifier: std::sync::Arc<crate::notify::Notifier>,
}

pub fn server(
    listener: TcpListener,
    shared: Shared,
    workers: usize,
    max_connections: usize,
) -> std::io::Result<actix_web::dev::Server> {
    let Shared {
        snapshots,
        push_route,
        access,
        streams,
        notifier,
    } = shared;
    let workers = workers.max(1);
    let data = web::Data::new(snapshots);
    let access = web::Data::from(access);
    let streams = web::Data::new(streams);
    let push_route = web::Data::from(push_route);
    let failures = web::Data::new(auth::AuthFailures::default());
    let notifier = web::Data::from(notifier);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(push_route.clone())
            .app_data(access.clone())
            .app_data(streams.clone())
            .app_data(failures.clone())
            .app_data(notifier.clone())
            .configure(routes::configure)
            .default_service(web::to(routes::not_found))
    })
    .on_connect(bound_stalls)
    .workers(workers)
    // actix counts per worker: the total is split between them.
    .max_connections(max_connections.div_ceil(workers).max(1))
    .disable_signals()
    .shutdown_timeout(2)
    .listen(listener)?
    .run();
    Ok(server)
}
