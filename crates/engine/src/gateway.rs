//! What the device gateway asks of the domain: who a client certificate is (its account,
//! as AWS IoT Core's gateway resolves it) and what its policies let the connection do.
//! The network side (TLS, MQTT, the broker) is the `palisade-gateway` crate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use palisade_iot_policy::{Context, PolicySet};
use palisade_store::{AttachedThing, ConnectionClose, ConnectionRecord, Scope};
use sha2::{Digest, Sha256};
use x509_parser::prelude::*;

use crate::{Engine, EngineResult};

/// A client certificate the gateway accepted: registered and ACTIVE in `scope`.
#[derive(Debug, Clone)]
pub struct DeviceIdentity {
    pub scope: Scope,
    /// Lowercase hex SHA-256 of the DER, as AWS IoT names certificates.
    pub certificate_id: String,
    pub certificate_arn: String,
    /// The `iot:Certificate.*` policy variables of the certificate.
    certificate_variables: Vec<(String, Vec<String>)>,
}

/// Why a client certificate does not authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRefusal {
    /// Registered in no account of this region.
    NotRegistered,
    /// Registered, but not ACTIVE (the status).
    NotActive(String),
    /// Registered in several accounts, and the TLS server name names none of them.
    AccountNotChosen,
    /// The certificate does not parse (the TLS layer accepted its signature, so this is
    /// a certificate no registration could hold).
    Unreadable,
}

/// What one connection may do: its policies and the values of their variables.
#[derive(Debug, Clone)]
pub struct DeviceAuthorization {
    pub policies: Arc<PolicySet>,
    pub context: Context,
    /// The thing the connection acts for: attached to the certificate and named like
    /// the client id, or the thing attached exclusively.
    pub thing_name: Option<String>,
    resource_prefix: String,
}

impl DeviceAuthorization {
    /// Whether `action` (`iot:Connect`, `iot:Publish`, ...) is allowed on
    /// `<kind>/<name>` (`client/<id>`, `topic/<t>`, `topicfilter/<f>`).
    pub fn allows(&self, action: &str, kind: &str, name: &str) -> bool {
        let resource = format!("{}{kind}/{name}", self.resource_prefix);
        self.policies
            .authorize(action, &resource, &self.context)
            .is_allowed()
    }
}

/// A registry change counter: the gateway re-reads a connection's certificate and
/// policies when it moves. Bumped here by every write that can change them, and (through
/// the store) by writes on other nodes.
#[derive(Default)]
pub(crate) struct RegistryEpoch {
    local: AtomicU64,
    /// A local change not yet published to the store for the other nodes.
    unpublished: AtomicBool,
    /// Parsed policy sets by their documents: a fleet shares a few policies, so a
    /// connection burst parses each set once, not once per device.
    parsed: Mutex<HashMap<Vec<String>, Arc<PolicySet>>>,
}

/// Policy sets kept parsed; past this the cache starts over.
const PARSED_SETS: usize = 4096;

impl RegistryEpoch {
    /// The policy set of these default-version documents, parsed once. Documents were
    /// validated when stored; one that no longer parses authorizes nothing rather than
    /// failing the connection.
    fn policy_set(&self, documents: Vec<String>) -> Arc<PolicySet> {
        let mut parsed = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = parsed.get(&documents) {
            return set.clone();
        }
        let set = PolicySet::parse(documents.iter().map(String::as_str)).unwrap_or_else(|_| {
            let good = documents
                .iter()
                .map(String::as_str)
                .filter(|d| PolicySet::parse([*d]).is_ok());
            PolicySet::parse(good).unwrap_or_default()
        });
        let set = Arc::new(set);
        if parsed.len() >= PARSED_SETS {
            parsed.clear();
        }
        parsed.insert(documents, set.clone());
        set
    }
}

/// The operations that can change whether a connected device's certificate is active
/// or what its policies allow.
const REGISTRY_OPERATIONS: &[&str] = &[
    "UpdateCertificate",
    "DeleteCertificate",
    "AttachPolicy",
    "DetachPolicy",
    "CreatePolicyVersion",
    "SetDefaultPolicyVersion",
    "DeletePolicyVersion",
    "DeletePolicy",
    "AttachThingPrincipal",
    "DetachThingPrincipal",
    "AddThingToThingGroup",
    "RemoveThingFromThingGroup",
    "UpdateThingGroupsForThing",
    "UpdateThing",
    "DeleteThing",
    "DeleteThingGroup",
];

/// Most things a certificate can be attached to that the gateway looks at: enough to
/// find the one named like the client id among a handful, and to tell "exactly one".
const ATTACHED_THINGS: usize = 1000;

impl Engine {
    /// Authenticates a client certificate as AWS IoT Core does: registered (by the
    /// SHA-256 of its DER) in an account of this server's region, and ACTIVE. A
    /// certificate registered in several accounts is resolved by the TLS server name:
    /// its first label must be one of those account ids (`123456789012.localhost`).
    pub async fn authenticate_device(
        &self,
        region: &str,
        certificate_der: &[u8],
        server_name: Option<&str>,
    ) -> EngineResult<Result<DeviceIdentity, AuthRefusal>> {
        let certificate_id = hex_sha256(certificate_der);
        let registrations = self
            .store()
            .certificate_registrations(region, &certificate_id)
            .await?;
        let chosen = match registrations.as_slice() {
            [] => return Ok(Err(AuthRefusal::NotRegistered)),
            [only] => only,
            several => {
                let label = server_name.and_then(|n| n.split('.').next()).unwrap_or("");
                match several.iter().find(|r| r.account_id == label) {
                    Some(r) => r,
                    None => return Ok(Err(AuthRefusal::AccountNotChosen)),
                }
            }
        };
        if chosen.status != "ACTIVE" {
            return Ok(Err(AuthRefusal::NotActive(chosen.status.clone())));
        }
        let Some(certificate_variables) = certificate_variables(certificate_der) else {
            return Ok(Err(AuthRefusal::Unreadable));
        };
        let scope = Scope {
            account_id: chosen.account_id.clone(),
            region: region.to_owned(),
        };
        Ok(Ok(DeviceIdentity {
            certificate_arn: crate::certificates::certificate_arn(&scope, &certificate_id),
            scope,
            certificate_id,
            certificate_variables,
        }))
    }

    /// The policies and variables that authorize a connection of `identity` as
    /// `client_id`: the certificate's policies, and those of the thing groups (with
    /// their ancestors) of the connection's thing.
    pub async fn device_authorization(
        &self,
        identity: &DeviceIdentity,
        client_id: &str,
        source_ip: &str,
    ) -> EngineResult<DeviceAuthorization> {
        let scope = &identity.scope;
        let attached = self
            .store()
            .attached_things(scope, &identity.certificate_id, ATTACHED_THINGS)
            .await?;
        let thing_name = connection_thing(&attached, client_id);
        let thing = match &thing_name {
            Some(name) => self.store().get_thing(scope, name).await?,
            None => None,
        };
        let policies = self
            .store()
            .effective_policies(scope, &identity.certificate_arn, thing_name.as_deref())
            .await?;
        let documents: Vec<String> = policies.into_iter().map(|p| p.document).collect();
        let policies = self.inner.registry_epoch.policy_set(documents);

        let mut context = Context::new();
        context
            .set("iot:ClientId", client_id)
            .set("iot:CertificateId", identity.certificate_id.as_str())
            .set("aws:SourceIp", source_ip)
            .set(
                "iot:Connection.Thing.IsAttached",
                if thing.is_some() { "true" } else { "false" },
            );
        if let Some(thing) = &thing {
            context.set("iot:Connection.Thing.ThingName", thing.name.as_str());
            if let Some(t) = &thing.thing_type_name {
                context.set("iot:Connection.Thing.ThingTypeName", t.as_str());
            }
            for (name, value) in &thing.attributes {
                context.set(
                    &format!("iot:Connection.Thing.Attributes[{name}]"),
                    value.as_str(),
                );
            }
        }
        for (key, values) in &identity.certificate_variables {
            context.set_list(key, values.clone());
        }
        Ok(DeviceAuthorization {
            policies,
            context,
            thing_name: thing.map(|t| t.name),
            resource_prefix: format!("arn:aws:iot:{}:{}:", scope.region, scope.account_id),
        })
    }

    /// Of the certificates with connections on this node (account, certificate id),
    /// those to cut off, with the status each has now (`None`: no longer registered in
    /// that account).
    pub async fn certificates_to_cut_off(
        &self,
        region: &str,
        held: &[(String, String)],
    ) -> EngineResult<Vec<(String, String, Option<String>)>> {
        let mut ids: Vec<String> = held.iter().map(|(_, id)| id.clone()).collect();
        ids.sort();
        ids.dedup();
        let statuses: HashMap<(String, String), String> = self
            .store()
            .certificate_statuses(region, &ids)
            .await?
            .into_iter()
            .map(|(id, account, status)| ((account, id), status))
            .collect();
        Ok(held
            .iter()
            .filter_map(|(account, id)| {
                let status = statuses.get(&(account.clone(), id.clone())).cloned();
                (status.as_deref() != Some("ACTIVE")).then(|| (account.clone(), id.clone(), status))
            })
            .collect())
    }

    /// Records new connections durably (the gateway answers CONNACK after this), each
    /// taking over any open session of its client id; the ids so taken over.
    pub async fn connections_opened(
        &self,
        opens: &[(Scope, ConnectionRecord)],
    ) -> EngineResult<Vec<String>> {
        Ok(self.store().open_connections(opens).await?)
    }

    /// Records ended connections (a reason recorded first, by a takeover, stays).
    pub async fn connections_closed(&self, closes: &[ConnectionClose]) -> EngineResult<()> {
        Ok(self.store().close_connections(closes).await?)
    }

    /// At a gateway node's start: closes what a crash of that node left open.
    pub async fn close_node_connections(&self, node_id: &str, reason: &str) -> EngineResult<u64> {
        let now = self.now_ms();
        Ok(self
            .store()
            .close_node_connections(node_id, now, reason)
            .await?)
    }

    /// Of these connection ids, those closed in the store (by a takeover on another
    /// node), with the reason recorded.
    pub async fn closed_connections_among(
        &self,
        ids: &[String],
    ) -> EngineResult<Vec<(String, String)>> {
        Ok(self.store().closed_connections_among(ids).await?)
    }

    /// Gateway TLS material every node shares: what is stored under `name`, or `value`.
    pub async fn gateway_secret_or_insert(
        &self,
        name: &str,
        value: &[u8],
    ) -> EngineResult<Vec<u8>> {
        Ok(self.store().gateway_secret_or_insert(name, value).await?)
    }

    /// The store's registry change counter (where a node's sync starts).
    pub async fn registry_epoch_stored(&self) -> EngineResult<i64> {
        Ok(self.store().registry_epoch().await?)
    }

    /// Publishes this node's registry changes to the store and learns those of other
    /// nodes; `seen` is the store's counter as last read. Called every few hundred
    /// milliseconds by `palisade serve`.
    pub async fn sync_registry_epoch(&self, seen: &mut i64) -> EngineResult<()> {
        let epoch = &self.inner.registry_epoch;
        let stored = if epoch.unpublished.swap(false, Ordering::AcqRel) {
            match self.store().bump_registry_epoch().await {
                Ok(v) => {
                    // Our own change: the local counter has moved already.
                    *seen = v;
                    return Ok(());
                }
                Err(e) => {
                    epoch.unpublished.store(true, Ordering::Release);
                    return Err(e.into());
                }
            }
        } else {
            self.store().registry_epoch().await?
        };
        if stored != *seen {
            *seen = stored;
            epoch.local.fetch_add(1, Ordering::Release);
        }
        Ok(())
    }

    /// Records that the registry changed (a certificate, policy, attachment or group):
    /// live connections re-read what authorizes them from their next packet.
    pub fn registry_changed(&self) {
        let epoch = &self.inner.registry_epoch;
        epoch.local.fetch_add(1, Ordering::Release);
        epoch.unpublished.store(true, Ordering::Release);
    }

    /// Called after an operation succeeded: notes a registry change when the operation
    /// can change what authorizes a connected device.
    pub fn operation_done(&self, operation: &str) {
        if REGISTRY_OPERATIONS.contains(&operation) {
            self.registry_changed();
        }
    }

    /// The registry change counter this node knows.
    pub fn registry_epoch(&self) -> u64 {
        self.inner.registry_epoch.local.load(Ordering::Acquire)
    }
}

/// The thing a connection acts for (AWS: the attached thing whose name is the client
/// id; else the thing attached exclusively).
fn connection_thing(attached: &[AttachedThing], client_id: &str) -> Option<String> {
    if let Some(t) = attached.iter().find(|t| t.name == client_id) {
        return Some(t.name.clone());
    }
    match attached {
        [only] if only.exclusive => Some(only.name.clone()),
        _ => None,
    }
}

fn hex_sha256(der: &[u8]) -> String {
    hex_lower(&Sha256::digest(der))
}

fn hex_lower(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

/// The `iot:Certificate.*` variables AWS IoT defines for a certificate: subject and
/// issuer attributes, their alternative names, the serial number, and AvailableKeys.
/// `None` if the DER does not parse.
fn certificate_variables(der: &[u8]) -> Option<Vec<(String, Vec<String>)>> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |key: String, value: String| {
        if let Some((_, values)) = out.iter_mut().find(|(k, _)| *k == key) {
            values.push(value);
        } else {
            out.push((key, vec![value]));
        }
    };
    for (side, name) in [("Subject", cert.subject()), ("Issuer", cert.issuer())] {
        for attr in name.iter_attributes() {
            let Some(label) = attribute_label(attr.attr_type()) else {
                continue;
            };
            if let Ok(value) = attr.as_str() {
                add(format!("iot:Certificate.{side}.{label}"), value.to_owned());
            }
        }
    }
    add(
        "iot:Certificate.SerialNumber".into(),
        cert.tbs_certificate.raw_serial_as_string().replace(':', ""),
    );
    for (side, ext) in [
        ("Subject", cert.subject_alternative_name().ok().flatten()),
        ("Issuer", None),
    ] {
        let Some(ext) = ext else { continue };
        for general in &ext.value.general_names {
            let (label, value) = match general {
                GeneralName::RFC822Name(v) => ("RFC822Name", (*v).to_owned()),
                GeneralName::DNSName(v) => ("DNSName", (*v).to_owned()),
                GeneralName::URI(v) => ("UniformResourceIdentifier", (*v).to_owned()),
                GeneralName::DirectoryName(n) => ("DirectoryName", n.to_string()),
                GeneralName::IPAddress(b) => ("IPAddress", ip_text(b)),
                _ => continue,
            };
            add(
                format!("iot:Certificate.{side}.AlternativeName.{label}"),
                value,
            );
        }
    }
    // AWS caps each list at five values.
    for (_, values) in &mut out {
        values.truncate(5);
    }
    let keys: Vec<String> = out.iter().map(|(k, _)| k.clone()).collect();
    out.push(("iot:Certificate.AvailableKeys".into(), keys));
    Some(out)
}

fn attribute_label(oid: &x509_parser::der_parser::oid::Oid<'_>) -> Option<&'static str> {
    use x509_parser::oid_registry as o;
    Some(match oid {
        o if *o == o::OID_X509_COMMON_NAME => "CommonName",
        o if *o == o::OID_X509_COUNTRY_NAME => "Country",
        o if *o == o::OID_X509_ORGANIZATION_NAME => "Organization",
        o if *o == o::OID_X509_ORGANIZATIONAL_UNIT => "OrganizationalUnit",
        o if *o == o::OID_X509_STATE_OR_PROVINCE_NAME => "State",
        o if *o == o::OID_X509_SERIALNUMBER => "SerialNumber",
        o if *o == o::OID_X509_TITLE => "Title",
        o if *o == o::OID_X509_SURNAME => "Surname",
        o if *o == o::OID_X509_GIVEN_NAME => "GivenName",
        o if *o == o::OID_X509_INITIALS => "Initials",
        o if *o == o::OID_X509_GENERATION_QUALIFIER => "GenerationQualifier",
        o if *o == o::OID_X509_DN_QUALIFIER => "DistinguishedNameQualifier",
        // pseudonym (2.5.4.65) has no constant in the registry.
        o if o.to_id_string() == "2.5.4.65" => "Pseudonym",
        _ => return None,
    })
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).unwrap_or([0; 4])).to_string(),
        16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).unwrap_or([0; 16])).to_string(),
        _ => hex_lower(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thing_is_the_one_named_like_the_client_or_the_exclusive_one() {
        let t = |name: &str, exclusive| AttachedThing {
            name: name.into(),
            exclusive,
        };
        assert_eq!(
            connection_thing(&[t("a", false), t("b", false)], "b"),
            Some("b".into())
        );
        assert_eq!(connection_thing(&[t("a", false)], "b"), None);
        assert_eq!(connection_thing(&[t("a", true)], "b"), Some("a".into()));
    }

    #[test]
    fn certificate_variables_name_subject_and_issuer_attributes() {
        let mut params = rcgen::CertificateParams::new(vec!["dev.example".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sensor-1");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let vars = certificate_variables(cert.der()).unwrap();
        let get = |k: &str| {
            vars.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            get("iot:Certificate.Subject.CommonName"),
            Some(vec!["sensor-1".into()])
        );
        assert_eq!(
            get("iot:Certificate.Issuer.Organization"),
            Some(vec!["Acme".into()])
        );
        assert_eq!(
            get("iot:Certificate.Subject.AlternativeName.DNSName"),
            Some(vec!["dev.example".into()])
        );
        assert!(get("iot:Certificate.AvailableKeys")
            .unwrap()
            .contains(&"iot:Certificate.Subject.CommonName".to_owned()));
    }
}
