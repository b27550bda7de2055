//! Response bodies and the JSON-RPC error responses the listener writes itself.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use http_body::{Body, Frame, SizeHint};
use mcp_transport_core::message::codes;
use mcp_transport_core::{ErrorObject, Id, Message};

use super::legacy::SseBody;
use super::modern::ExchangeBody;

/// Every body the listener sends.
pub(crate) enum ResponseBody {
    /// No body (`202`, `204`, `405`).
    Empty,
    /// A complete body, sent once.
    Full(Option<Bytes>),
    /// A 2025 session's SSE stream.
    Session(SseBody),
    /// A 2026-07-28 request's SSE stream.
    Exchange(ExchangeBody),
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let data = match self.get_mut() {
            ResponseBody::Empty => return Poll::Ready(None),
            ResponseBody::Full(b) => return Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Session(s) => s.poll_data(cx),
            ResponseBody::Exchange(e) => e.poll_data(cx),
        };
        data.map(|d| d.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Empty | ResponseBody::Full(None) => true,
            ResponseBody::Full(Some(_)) => false,
            ResponseBody::Session(s) => s.is_end(),
            ResponseBody::Exchange(e) => e.is_end(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Empty | ResponseBody::Full(None) => SizeHint::with_exact(0),
            ResponseBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            _ => SizeHint::default(),
        }
    }
}

pub(crate) type HttpResponse = http::Response<ResponseBody>;

/// A response with a status and no body.
pub(crate) fn empty(status: StatusCode) -> HttpResponse {
    let mut r = http::Response::new(ResponseBody::Empty);
    *r.status_mut() = status;
    r
}

/// An `application/json` response.
pub(crate) fn json(status: StatusCode, body: Bytes) -> HttpResponse {
    let mut r = http::Response::new(ResponseBody::Full(Some(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(crate::headers::JSON));
    r
}

/// A JSON-RPC error response with an HTTP status.
pub(crate) fn rpc_error(status: StatusCode, id: Option<Id>, code: i64, message: impl Into<String>) -> HttpResponse {
    rpc_error_object(status, id, ErrorObject::new(code, message))
}

/// A JSON-RPC error response (with data) with an HTTP status.
pub(crate) fn rpc_error_object(status: StatusCode, id: Option<Id>, error: ErrorObject) -> HttpResponse {
    tracing::debug!(status = status.as_u16(), code = error.code, message = %error.message, "request refused");
    let msg = Message::Response(mcp_transport_core::Response::error(id, error));
    json(status, Bytes::from(msg.to_vec()))
}

/// `401` with a JSON-RPC error and `WWW-Authenticate: Bearer` (with `error="invalid_token"`
/// when the client presented a token).
pub(crate) fn unauthorized(id: Option<Id>, presented: bool, message: impl Into<String>) -> HttpResponse {
    let mut r = rpc_error(StatusCode::UNAUTHORIZED, id, codes::INVALID_REQUEST, message);
    let challenge = if presented { "Bearer realm=\"mcp\", error=\"invalid_token\"" } else { "Bearer realm=\"mcp\"" };
    r.headers_mut().insert(http::header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    r
}

/// `405` with the methods the endpoint allows.
pub(crate) fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let mut r = empty(StatusCode::METHOD_NOT_ALLOWED);
    r.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// The headers of an SSE response.
pub(crate) fn sse(body: ResponseBody) -> HttpResponse {
    let mut r = http::Response::new(body);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(crate::headers::EVENT_STREAM));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

/// Cuts a peer-supplied value for an error message.
pub(crate) fn snippet(s: &str) -> String {
    const MAX: usize = 120;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
