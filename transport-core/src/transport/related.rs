//! The request a message is related to, for transports that route by request.
//!
//! Streamable HTTP sends the notifications and requests that belong to a client request on
//! that request's response stream. The session layer runs each request handler inside
//! [`with_related_request`]; a transport reads [`related_request`] while sending.

use std::future::Future;

use crate::message::Id;

tokio::task_local! {
    static RELATED_REQUEST: Id;
}

/// Runs `fut` with `id` as the related request of every message it sends.
pub fn with_related_request<F: Future>(id: Id, fut: F) -> impl Future<Output = F::Output> {
    RELATED_REQUEST.scope(id, fut)
}

/// The id of the request being served by the current task, if any.
pub fn related_request() -> Option<Id> {
    RELATED_REQUEST.try_with(Id::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scoped_to_the_future() {
        assert_eq!(related_request(), None);
        let seen = with_related_request(Id::Number(7), async { related_request() }).await;
        assert_eq!(seen, Some(Id::Number(7)));
        assert_eq!(related_request(), None);
    }
}
