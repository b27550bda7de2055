//! `subscriptions/listen` (2026-07-28): a long-lived request on whose stream change
//! notifications arrive.
//!
//! The server first sends `notifications/subscriptions/acknowledged` with the part of the
//! requested filter it honors, then every matching change, each tagged with
//! `_meta["io.modelcontextprotocol/subscriptionId"]` (the listen request's id). The request
//! is answered only when the server stops publishing changes; a client ends it by cancelling
//! (on Streamable HTTP, by closing the stream).

use std::collections::BTreeSet;
use std::sync::Arc;

use mcp_session::RequestContext;
use mcp_transport_core::message::to_raw;
use mcp_transport_core::{Id, RawValue};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::connections::{Connections, Event};
use crate::error::ServerError;
use crate::resources;

const METHOD: &str = "subscriptions/listen";

/// Which notifications a listener wants (`SubscriptionFilter`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Filter {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    tools_list_changed: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    prompts_list_changed: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    resources_list_changed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource_subscriptions: Option<BTreeSet<String>>,
}

impl Filter {
    /// The part of this filter the server honors: the tool and prompt lists, and updates of
    /// the resources it has (its resource list never changes).
    fn honored(&self) -> Filter {
        Filter {
            resources_list_changed: false,
            resource_subscriptions: self
                .resource_subscriptions
                .as_ref()
                .map(|uris| uris.iter().filter(|u| resources::exists(u)).cloned().collect()),
            ..self.clone()
        }
    }

    /// Whether `event` passes the filter.
    fn wants(&self, event: &Event) -> bool {
        match event {
            Event::ToolsListChanged => self.tools_list_changed,
            Event::PromptsListChanged => self.prompts_list_changed,
            Event::ResourceUpdated(uri) => self.resource_subscriptions.as_ref().is_some_and(|s| s.contains(&**uri)),
        }
    }
}

#[derive(Deserialize)]
struct Params {
    notifications: Filter,
}

#[derive(Serialize)]
struct Meta<'a> {
    #[serde(rename = "io.modelcontextprotocol/subscriptionId")]
    subscription_id: &'a Id,
}

#[derive(Serialize)]
struct Ack<'a> {
    #[serde(rename = "_meta")]
    meta: Meta<'a>,
    notifications: &'a Filter,
}

#[derive(Serialize)]
struct Tagged<'a> {
    #[serde(rename = "_meta")]
    meta: Meta<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<&'a str>,
}

#[derive(Serialize)]
struct Closed<'a> {
    #[serde(rename = "_meta")]
    meta: Meta<'a>,
}

/// Starts serving a `subscriptions/listen` request; the future runs until the change channel
/// closes (then answers) or the request is cancelled (then it is dropped unanswered).
pub(crate) fn listen(
    connections: &Arc<Connections>,
    params: Option<&RawValue>,
    ctx: RequestContext,
) -> Result<impl Future<Output = Result<Box<RawValue>, ServerError>> + Send + 'static, ServerError> {
    let raw = params.ok_or_else(|| ServerError::invalid_params(METHOD, "params with notifications are required"))?;
    let p: Params =
        serde_json::from_str(raw.get()).map_err(|e| ServerError::invalid_params(METHOD, format!("params: {e}")))?;
    let filter = p.notifications.honored();
    // Subscribed before the acknowledgement goes out, so no change after it is missed.
    let mut rx = connections.subscribe_events();
    Ok(async move {
        let id = ctx.id.clone();
        let ack = Ack { meta: Meta { subscription_id: &id }, notifications: &filter };
        notify(&ctx, "notifications/subscriptions/acknowledged", &ack).await?;
        tracing::debug!(%id, ?filter, "subscription acknowledged");
        loop {
            let events = match rx.recv().await {
                Ok(event) => vec![event],
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(%id, missed, "subscription fell behind; announcing every list as changed");
                    Event::LIST_CHANGES.to_vec()
                }
                Err(broadcast::error::RecvError::Closed) => break,
            };
            for event in events.into_iter().filter(|e| filter.wants(e)) {
                let uri = match &event {
                    Event::ResourceUpdated(uri) => Some(&**uri),
                    _ => None,
                };
                notify(&ctx, event.method(), &Tagged { meta: Meta { subscription_id: &id }, uri }).await?;
            }
        }
        to_raw(&Closed { meta: Meta { subscription_id: &id } }).map_err(ServerError::encode("listen result"))
    })
}

async fn notify<P: Serialize>(ctx: &RequestContext, method: &'static str, params: &P) -> Result<(), ServerError> {
    ctx.peer.notify(method, params).await.map_err(|e| ServerError::NotificationFailed { method, reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn filter(v: Value) -> Filter {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_filter_decides_what_is_sent() {
        let f = filter(json!({ "toolsListChanged": true, "resourceSubscriptions": ["test://watched-resource"] }));
        assert!(f.wants(&Event::ToolsListChanged));
        assert!(!f.wants(&Event::PromptsListChanged));
        assert!(f.wants(&Event::ResourceUpdated(resources::WATCHED_URI.into())));
        assert!(!f.wants(&Event::ResourceUpdated("test://other".into())));
    }

    #[test]
    fn the_acknowledgement_drops_unknown_resources_and_false_flags() {
        let f = filter(json!({
            "promptsListChanged": true, "toolsListChanged": false, "resourcesListChanged": true,
            "resourceSubscriptions": ["test://watched-resource", "test://nope"]
        }));
        let id = Id::Number(9);
        let ack =
            serde_json::to_value(Ack { meta: Meta { subscription_id: &id }, notifications: &f.honored() }).unwrap();
        assert_eq!(
            ack,
            json!({
                "_meta": { "io.modelcontextprotocol/subscriptionId": 9 },
                "notifications": { "promptsListChanged": true, "resourceSubscriptions": ["test://watched-resource"] }
            })
        );
    }

    #[test]
    fn notifications_carry_the_subscription_id() {
        let id = Id::from("listen-1");
        let t = serde_json::to_value(Tagged { meta: Meta { subscription_id: &id }, uri: Some("test://a") }).unwrap();
        assert_eq!(t, json!({ "_meta": { "io.modelcontextprotocol/subscriptionId": "listen-1" }, "uri": "test://a" }));
        let plain = serde_json::to_value(Tagged { meta: Meta { subscription_id: &id }, uri: None }).unwrap();
        assert_eq!(plain, json!({ "_meta": { "io.modelcontextprotocol/subscriptionId": "listen-1" } }));
    }
}
