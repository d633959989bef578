//! Authorization of one connection: the IoT policies attached to its
//! certificate, compiled once at CONNECT, with the connection's policy
//! variables (`${iot:ClientId}`, `${iot:Connection.Thing.ThingName}`,
//! `${iot:Certificate.Subject.CommonName}`).

use super::session::Authorize;
use crate::cloud::local::policy::{
    evaluate, resource_arn, CompiledPolicy, IotAction, RequestContext,
};

/// The policies of a connection's certificate and the values of its policy variables.
#[derive(Debug)]
pub struct ConnectionPolicy {
    policies: Vec<CompiledPolicy>,
    client_id: String,
    /// Set only when the clientId names a thing the certificate is attached
    /// to — AWS resolves `${iot:Connection.Thing.ThingName}` only then.
    thing_name: Option<String>,
    cert_common_name: Option<String>,
}

impl ConnectionPolicy {
    /// Compiled policies for the connection `client_id`.
    pub fn new(
        policies: Vec<CompiledPolicy>,
        client_id: &str,
        thing_name: Option<String>,
        cert_common_name: Option<String>,
    ) -> ConnectionPolicy {
        ConnectionPolicy {
            policies,
            client_id: client_id.to_string(),
            thing_name,
            cert_common_name,
        }
    }

    /// The policies' names (for refusal messages).
    pub fn names(&self) -> Vec<String> {
        self.policies.iter().map(|p| p.name().to_string()).collect()
    }

    fn allows(&self, action: IotAction, name: &str) -> bool {
        let ctx = RequestContext {
            client_id: &self.client_id,
            thing_name: self.thing_name.as_deref(),
            cert_common_name: self.cert_common_name.as_deref(),
        };
        evaluate(&self.policies, action, &resource_arn(action, name), &ctx).is_allowed()
    }

    /// `iot:Connect` on `client/<clientId>`.
    pub fn may_connect(&self) -> bool {
        self.allows(IotAction::Connect, &self.client_id)
    }

    /// `iot:Receive` on `topic/<topic>`: checked per delivery.
    pub fn may_receive(&self, topic: &str) -> bool {
        self.allows(IotAction::Receive, topic)
    }
}

impl Authorize for ConnectionPolicy {
    fn may_publish(&self, topic: &str) -> bool {
        self.allows(IotAction::Publish, topic)
    }

    fn may_subscribe(&self, filter: &str) -> bool {
        self.allows(IotAction::Subscribe, filter)
    }
}
