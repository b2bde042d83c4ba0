//! Things' principals and policies' targets.

use palisade_engine::{Engine, Scope};
use palisade_model::Request;

use super::{encode, encode_empty, Handled};

pub(super) async fn dispatch(engine: &Engine, scope: &Scope, request: Request) -> Handled {
    Ok(match request {
        Request::AttachThingPrincipal(i) => encode(engine.attach_thing_principal(scope, i).await),
        Request::DetachThingPrincipal(i) => encode(engine.detach_thing_principal(scope, i).await),
        Request::ListThingPrincipals(i) => encode(engine.list_thing_principals(scope, i).await),
        Request::ListPrincipalThings(i) => encode(engine.list_principal_things(scope, i).await),
        Request::AttachPolicy(i) => encode_empty(engine.attach_policy(scope, i).await),
        Request::DetachPolicy(i) => encode_empty(engine.detach_policy(scope, i).await),
        Request::ListAttachedPolicies(i) => encode(engine.list_attached_policies(scope, i).await),
        Request::ListTargetsForPolicy(i) => encode(engine.list_targets_for_policy(scope, i).await),
        other => return Err(other),
    })
}
