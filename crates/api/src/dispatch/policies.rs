//! IoT policies and their versions.

use palisade_engine::{Engine, Scope};
use palisade_model::Request;

use super::{encode, encode_empty, Handled};

pub(super) async fn dispatch(engine: &Engine, scope: &Scope, request: Request) -> Handled {
    Ok(match request {
        Request::CreatePolicy(i) => encode(engine.create_policy(scope, i).await),
        Request::GetPolicy(i) => encode(engine.get_policy(scope, i).await),
        Request::ListPolicies(i) => encode(engine.list_policies(scope, i).await),
        Request::DeletePolicy(i) => encode_empty(engine.delete_policy(scope, i).await),
        Request::CreatePolicyVersion(i) => encode(engine.create_policy_version(scope, i).await),
        Request::GetPolicyVersion(i) => encode(engine.get_policy_version(scope, i).await),
        Request::ListPolicyVersions(i) => encode(engine.list_policy_versions(scope, i).await),
        Request::SetDefaultPolicyVersion(i) => {
            encode_empty(engine.set_default_policy_version(scope, i).await)
        }
        Request::DeletePolicyVersion(i) => {
            encode_empty(engine.delete_policy_version(scope, i).await)
        }
        other => return Err(other),
    })
}
