//! Things' principals and policies' targets: AttachThingPrincipal, DetachThingPrincipal,
//! ListThingPrincipals, ListPrincipalThings, AttachPolicy, DetachPolicy,
//! ListAttachedPolicies and ListTargetsForPolicy.
//!
//! A principal is a device certificate of the caller's account, named by its ARN (AWS
//! also accepts Cognito identities, which Palisade does not manage). A policy target is
//! a certificate ARN or a thing group ARN.

use palisade_model::{
    AttachPolicyRequest, AttachThingPrincipalRequest, AttachThingPrincipalResponse,
    DetachPolicyRequest, DetachThingPrincipalRequest, DetachThingPrincipalResponse,
    ListAttachedPoliciesRequest, ListAttachedPoliciesResponse, ListPrincipalThingsRequest,
    ListPrincipalThingsResponse, ListTargetsForPolicyRequest, ListTargetsForPolicyResponse,
    ListThingPrincipalsRequest, ListThingPrincipalsResponse, Policy, ThingPrincipalType,
};
use palisade_store::{PolicyTarget, PrincipalRefusal};

use crate::arn::ResourceArn;
use crate::certificates::{certificate_arn, certificate_not_found};
use crate::required;
use crate::{paging, Engine, EngineError, EngineResult, Scope};

const THING_PRINCIPALS_LISTING: &str = "thing-principals";
const PRINCIPAL_THINGS_LISTING: &str = "principal-things";
const ATTACHED_POLICIES_LISTING: &str = "attached-policies";
const POLICY_TARGETS_LISTING: &str = "policy-targets";
/// As the registry's other nextToken listings.
const DEFAULT_PAGE: usize = 25;
/// As the other marker listings (ListPolicies).
const DEFAULT_MARKER_PAGE: usize = 250;
/// AWS quota: policies attached to one certificate (Palisade applies it to every target).
pub(crate) const MAX_POLICIES_PER_TARGET: usize = 10;

fn thing_not_found(name: &str) -> EngineError {
    EngineError::NotFound(format!("Thing {name} cannot be found."))
}

fn policy_not_found(name: &str) -> EngineError {
    EngineError::NotFound(format!("The policy {name} does not exist."))
}

fn is_certificate_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What an ARN given as a principal or target names.
enum Named {
    /// A certificate of the caller's scope, by (lowercase) id.
    Certificate(String),
    /// A thing group of the caller's scope, by name.
    ThingGroup(String),
    /// A certificate or group ARN of another account or region: it cannot exist here.
    Elsewhere,
}

/// Parses a principal or target. `allow_groups` admits thing group ARNs. Anything that
/// is not such an ARN at all is InvalidRequestException.
fn parse_named(
    scope: &Scope,
    value: &str,
    member: &str,
    allow_groups: bool,
) -> EngineResult<Named> {
    let unsupported = || {
        EngineError::InvalidRequest(format!(
            "{member} '{value}' is not {}.",
            if allow_groups {
                "a certificate ARN or a thing group ARN (the only targets Palisade supports)"
            } else {
                "a certificate ARN (the only principals Palisade supports)"
            }
        ))
    };
    let parsed = ResourceArn::parse(value).ok_or_else(unsupported)?;
    let named = match parsed.resource_type {
        "cert" if is_certificate_id(parsed.resource_id) => {
            Named::Certificate(parsed.resource_id.to_ascii_lowercase())
        }
        "thinggroup" if allow_groups && !parsed.resource_id.is_empty() => {
            Named::ThingGroup(parsed.resource_id.to_owned())
        }
        _ => return Err(unsupported()),
    };
    Ok(if parsed.belongs_to(scope) {
        named
    } else {
        Named::Elsewhere
    })
}

fn missing(value: &str) -> EngineError {
    EngineError::NotFound(format!("The resource {value} does not exist."))
}

fn unexpected(refusal: PrincipalRefusal) -> EngineError {
    EngineError::Internal(format!("unexpected refusal {refusal:?}"))
}

impl Engine {
    /// The id of the caller's certificate `principal` names; ResourceNotFoundException if
    /// there is none.
    async fn principal_certificate(&self, scope: &Scope, principal: &str) -> EngineResult<String> {
        match parse_named(scope, principal, "principal", false)? {
            Named::Certificate(id) => {
                if self.store().get_certificate(scope, &id).await?.is_some() {
                    Ok(id)
                } else {
                    Err(certificate_not_found(&id))
                }
            }
            _ => Err(missing(principal)),
        }
    }

    /// The target an ARN names, as stored; ResourceNotFoundException if it names nothing
    /// of the caller's (checked against the stored ARN, so a renamed region or account
    /// in the ARN never matches).
    async fn policy_target(&self, scope: &Scope, target: &str) -> EngineResult<PolicyTarget> {
        match parse_named(scope, target, "target", true)? {
            Named::Certificate(id) => {
                if self.store().get_certificate(scope, &id).await?.is_none() {
                    return Err(missing(target));
                }
                let arn = certificate_arn(scope, &id);
                Ok(PolicyTarget::Certificate { id, arn })
            }
            Named::ThingGroup(name) => {
                let view = self
                    .store()
                    .get_thing_group(scope, &name)
                    .await?
                    .filter(|v| v.group.arn == target)
                    .ok_or_else(|| missing(target))?;
                Ok(PolicyTarget::ThingGroup {
                    name,
                    arn: view.group.arn,
                })
            }
            Named::Elsewhere => Err(missing(target)),
        }
    }

    pub async fn attach_thing_principal(
        &self,
        scope: &Scope,
        input: AttachThingPrincipalRequest,
    ) -> EngineResult<AttachThingPrincipalResponse> {
        let thing = required(input.thing_name, "thingName")?;
        let principal = required(input.principal, "principal")?;
        let exclusive = input.thing_principal_type == Some(ThingPrincipalType::ExclusiveThing);
        let id = match parse_named(scope, &principal, "principal", false)? {
            Named::Certificate(id) => id,
            _ => return Err(missing(&principal)),
        };
        match self
            .store()
            .attach_thing_principal(scope, &thing, &id, exclusive, self.now_ms())
            .await?
        {
            Ok(()) => Ok(AttachThingPrincipalResponse {}),
            Err(PrincipalRefusal::ThingNotFound) => Err(thing_not_found(&thing)),
            Err(PrincipalRefusal::CertificateNotFound) => Err(certificate_not_found(&id)),
            Err(PrincipalRefusal::Exclusive { thing: other }) => {
                Err(EngineError::InvalidRequest(if exclusive {
                    format!(
                        "The principal {principal} cannot be attached exclusively to {thing}: it is attached to thing {other}."
                    )
                } else {
                    format!("The principal {principal} is attached exclusively to thing {other}.")
                }))
            }
            Err(other) => Err(unexpected(other)),
        }
    }

    /// Detaching a principal that is not attached succeeds; an unknown thing or
    /// certificate is ResourceNotFoundException.
    pub async fn detach_thing_principal(
        &self,
        scope: &Scope,
        input: DetachThingPrincipalRequest,
    ) -> EngineResult<DetachThingPrincipalResponse> {
        let thing = required(input.thing_name, "thingName")?;
        let principal = required(input.principal, "principal")?;
        let id = self.principal_certificate(scope, &principal).await?;
        match self
            .store()
            .detach_thing_principal(scope, &thing, &id)
            .await?
        {
            Ok(_) => Ok(DetachThingPrincipalResponse {}),
            Err(PrincipalRefusal::ThingNotFound) => Err(thing_not_found(&thing)),
            Err(other) => Err(unexpected(other)),
        }
    }

    pub async fn list_thing_principals(
        &self,
        scope: &Scope,
        input: ListThingPrincipalsRequest,
    ) -> EngineResult<ListThingPrincipalsResponse> {
        let thing = required(input.thing_name, "thingName")?;
        let tokens = &self.inner.tokens;
        let after = match input.next_token.as_deref() {
            Some(t) if !t.is_empty() => {
                Some(tokens.open(scope, THING_PRINCIPALS_LISTING, &thing, t)?)
            }
            _ => None,
        };
        let size = paging::page_size(input.max_results, DEFAULT_PAGE);
        let page = paging::Page::cut(
            self.store()
                .list_thing_principals(scope, &thing, after.as_deref(), size + 1)
                .await?
                .ok_or_else(|| thing_not_found(&thing))?,
            size,
        );
        let next_token =
            page.next(|last| tokens.issue(scope, THING_PRINCIPALS_LISTING, &thing, last));
        let ids = page.items;
        Ok(ListThingPrincipalsResponse {
            next_token,
            principals: Some(ids.iter().map(|id| certificate_arn(scope, id)).collect()),
        })
    }

    pub async fn list_principal_things(
        &self,
        scope: &Scope,
        input: ListPrincipalThingsRequest,
    ) -> EngineResult<ListPrincipalThingsResponse> {
        let principal = required(input.principal, "principal")?;
        let id = self.principal_certificate(scope, &principal).await?;
        let tokens = &self.inner.tokens;
        let after = match input.next_token.as_deref() {
            Some(t) if !t.is_empty() => {
                Some(tokens.open(scope, PRINCIPAL_THINGS_LISTING, &id, t)?)
            }
            _ => None,
        };
        let size = paging::page_size(input.max_results, DEFAULT_PAGE);
        let page = paging::Page::fetch(size, |n| {
            self.store()
                .list_principal_things(scope, &id, after.as_deref(), n)
        })
        .await?;
        let next_token = page.next(|last| tokens.issue(scope, PRINCIPAL_THINGS_LISTING, &id, last));
        let things = page.items;
        Ok(ListPrincipalThingsResponse {
            next_token,
            things: Some(things),
        })
    }

    /// AttachPolicy; the model has no output. Attaching again succeeds.
    pub async fn attach_policy(
        &self,
        scope: &Scope,
        input: AttachPolicyRequest,
    ) -> EngineResult<()> {
        let policy = required(input.policy_name, "policyName")?;
        let target_arn = required(input.target, "target")?;
        let target = self.policy_target(scope, &target_arn).await?;
        match self
            .store()
            .attach_policy(scope, &policy, &target, MAX_POLICIES_PER_TARGET, self.now_ms())
            .await?
        {
            Ok(()) => Ok(()),
            Err(PrincipalRefusal::PolicyNotFound) => Err(policy_not_found(&policy)),
            Err(PrincipalRefusal::CertificateNotFound | PrincipalRefusal::GroupNotFound) => {
                Err(missing(&target_arn))
            }
            Err(PrincipalRefusal::TooManyPolicies { limit }) => {
                Err(EngineError::LimitExceeded(format!(
                    "The target {target_arn} already has {limit} policies attached, the most it can have."
                )))
            }
            Err(other) => Err(unexpected(other)),
        }
    }

    /// DetachPolicy; the model has no output and lists no ResourceNotFoundException, so
    /// detaching what is not attached (an unknown policy or target included) succeeds.
    /// A target that is not a certificate or thing group ARN is InvalidRequestException.
    pub async fn detach_policy(
        &self,
        scope: &Scope,
        input: DetachPolicyRequest,
    ) -> EngineResult<()> {
        let policy = required(input.policy_name, "policyName")?;
        let target = required(input.target, "target")?;
        let stored_as = match parse_named(scope, &target, "target", true)? {
            Named::Certificate(id) => certificate_arn(scope, &id),
            Named::ThingGroup(name) => format!(
                "arn:aws:iot:{}:{}:thinggroup/{name}",
                scope.region, scope.account_id
            ),
            Named::Elsewhere => return Ok(()),
        };
        self.store()
            .detach_policy(scope, &policy, &stored_as)
            .await?;
        Ok(())
    }

    /// With `recursive` and a thing group target, the policies of the group's ancestors
    /// are listed too (each policy once).
    pub async fn list_attached_policies(
        &self,
        scope: &Scope,
        input: ListAttachedPoliciesRequest,
    ) -> EngineResult<ListAttachedPoliciesResponse> {
        let target_arn = required(input.target, "target")?;
        let target = self.policy_target(scope, &target_arn).await?;
        let recursive = input.recursive == Some(true);
        let mut targets = vec![target.arn().to_owned()];
        if let (true, PolicyTarget::ThingGroup { name, .. }) = (recursive, &target) {
            let view = self
                .store()
                .get_thing_group(scope, name)
                .await?
                .ok_or_else(|| missing(&target_arn))?;
            targets.extend(view.root_to_parent.into_iter().map(|g| g.arn));
        }
        let listing = format!("{ATTACHED_POLICIES_LISTING}/{recursive}/{}", target.arn());
        let after = self.open_marker(scope, &listing, false, input.marker.as_deref())?;
        let size = paging::page_size(input.page_size, DEFAULT_MARKER_PAGE);
        let page = paging::Page::fetch(size, |n| {
            self.store()
                .list_attached_policies(scope, &targets, after.as_deref(), n)
        })
        .await?;
        let next_marker = page.next(|last| self.issue_marker(scope, &listing, false, &last.name));
        let policies = page.items;
        Ok(ListAttachedPoliciesResponse {
            next_marker,
            policies: Some(
                policies
                    .into_iter()
                    .map(|p| Policy {
                        policy_arn: Some(p.arn),
                        policy_name: Some(p.name),
                    })
                    .collect(),
            ),
        })
    }

    pub async fn list_targets_for_policy(
        &self,
        scope: &Scope,
        input: ListTargetsForPolicyRequest,
    ) -> EngineResult<ListTargetsForPolicyResponse> {
        let policy = required(input.policy_name, "policyName")?;
        let listing = format!("{POLICY_TARGETS_LISTING}/{policy}");
        let after = self.open_marker(scope, &listing, false, input.marker.as_deref())?;
        let size = paging::page_size(input.page_size, DEFAULT_MARKER_PAGE);
        let page = paging::Page::cut(
            self.store()
                .list_targets_for_policy(scope, &policy, after.as_deref(), size + 1)
                .await?
                .ok_or_else(|| policy_not_found(&policy))?,
            size,
        );
        let next_marker = page.next(|last| self.issue_marker(scope, &listing, false, last));
        let targets = page.items;
        Ok(ListTargetsForPolicyResponse {
            next_marker,
            targets: Some(targets),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
        }
    }

    #[test]
    fn parses_principals_and_targets() {
        let id = "a".repeat(64);
        let cert = format!("arn:aws:iot:us-east-1:123456789012:cert/{id}");
        assert!(matches!(
            parse_named(&scope(), &cert, "principal", false),
            Ok(Named::Certificate(c)) if c == id
        ));
        let upper = cert.replace(&id, &"A".repeat(64));
        assert!(matches!(
            parse_named(&scope(), &upper, "principal", false),
            Ok(Named::Certificate(c)) if c == id
        ));
        let other = cert.replace("123456789012", "210987654321");
        assert!(matches!(
            parse_named(&scope(), &other, "principal", false),
            Ok(Named::Elsewhere)
        ));
        let group = "arn:aws:iot:us-east-1:123456789012:thinggroup/g1";
        assert!(parse_named(&scope(), group, "principal", false).is_err());
        assert!(matches!(
            parse_named(&scope(), group, "target", true),
            Ok(Named::ThingGroup(g)) if g == "g1"
        ));
        for bad in [
            "us-east-1:0f0f0f0f-aaaa-bbbb-cccc-000000000000",
            "arn:aws:iot:us-east-1:123456789012:cert/short",
            "arn:aws:iot:us-east-1:123456789012:thing/t",
            "",
        ] {
            assert!(
                matches!(
                    parse_named(&scope(), bad, "target", true),
                    Err(EngineError::InvalidRequest(_))
                ),
                "{bad}"
            );
        }
    }
}
